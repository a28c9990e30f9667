"""AWS commands: ``aws check`` says what will work on this account; ``aws setup`` deploys the AWS side as one stack."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from carmatch.cloud.aws_check import as_dicts, check_account, has_problems


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``aws`` command group to the admin parser."""
    p = subparsers.add_parser("aws", help="check the AWS account, or set up its side of carmatch as one stack")
    sub = p.add_subparsers(dest="aws_command", metavar="ACTION", required=True)
    c = sub.add_parser("check", help="one line per fact (OK / WARNING / PROBLEM + the fix); reads only, costs nothing")
    c.add_argument("--json", action="store_true", help="print a JSON list of {name, status, detail, fix}")
    c.set_defaults(func=cmd_aws_check)
    s = sub.add_parser(
        "setup", help="deploy deploy/aws/carmatch.yaml (bucket + service roles) and write its outputs into .env"
    )
    s.add_argument("--stack-name", default="carmatch", help="CloudFormation stack name (default carmatch)")
    s.add_argument("--bucket", default="", help="bucket name to create (default: one CloudFormation makes unique)")
    s.add_argument("--name-prefix", default="", help="start of the role and policy names (default carmatch)")
    s.add_argument("--env-file", default=".env", help="the .env file to update (default ./.env)")
    s.add_argument(
        "--dry-run", action="store_true", help="print the stack, its parameters and resources; deploy nothing"
    )
    s.set_defaults(func=cmd_aws_setup)


def cmd_aws_check(args: argparse.Namespace) -> int:
    """Run every check that applies to the settings; exit status 1 when any line is a problem."""
    lines = check_account(args.settings)
    if args.json:
        print(json.dumps(as_dicts(lines), indent=2))
    else:
        for line in lines:
            print(line.text())
    return 1 if has_problems(lines) else 0


def cmd_aws_setup(args: argparse.Namespace) -> int:
    """Deploy the stack (or print its plan) and write the bucket and role ARNs into .env."""
    from carmatch.aws import make_client
    from carmatch.cloud.aws_setup import deploy, env_values, plan, write_env

    settings = args.settings
    setup = plan(args.stack_name, settings.aws_region, settings.caption_model, args.bucket, args.name_prefix)
    if args.dry_run:
        print(setup.text())
        return 0
    outputs = deploy(make_client("cloudformation", settings.aws_region), setup)
    values = env_values(outputs, settings.aws_region)
    write_env(Path(args.env_file), values)
    for key, value in values.items():
        print(f"{key}={value}")
    print(
        f"Written to {args.env_file}. Attach {outputs.get('UserPolicyArn', 'the stack’s user policy')} to the "
        "identity that runs carmatch, then run: .venv/bin/carmatch aws check"
    )
    return 0
