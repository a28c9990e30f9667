"""AWS commands: ``aws check`` says what will work on this account before anything is spent."""

from __future__ import annotations

import argparse
import json

from carmatch.cloud.aws_check import as_dicts, check_account, has_problems


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``aws`` command group to the admin parser."""
    p = subparsers.add_parser("aws", help="check the AWS account: credentials, region, models, bucket, roles")
    sub = p.add_subparsers(dest="aws_command", metavar="ACTION", required=True)
    c = sub.add_parser("check", help="one line per fact (OK / WARNING / PROBLEM + the fix); reads only, costs nothing")
    c.add_argument("--json", action="store_true", help="print a JSON list of {name, status, detail, fix}")
    c.set_defaults(func=cmd_aws_check)


def cmd_aws_check(args: argparse.Namespace) -> int:
    """Run every check that applies to the settings; exit status 1 when any line is a problem."""
    lines = check_account(args.settings)
    if args.json:
        print(json.dumps(as_dicts(lines), indent=2))
    else:
        for line in lines:
            print(line.text())
    return 1 if has_problems(lines) else 0
