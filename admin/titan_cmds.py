"""``titan provision`` / ``titan deprovision``: the provisioned throughput a fine-tuned Titan model needs."""

from __future__ import annotations

import argparse

from admin.common import runtime_for
from carmatch.cloud.titan_provision import COMMITMENTS


def add_actions(sub: argparse._SubParsersAction) -> None:
    """Add ``provision`` and ``deprovision`` to the ``titan`` command's actions."""
    s = sub.add_parser("provision", help="create the provisioned throughput a finished job's custom model needs")
    s.add_argument("job", help="the Titan job name (see titan status)")
    s.add_argument("--units", type=int, default=1, help="model units (default 1)")
    s.add_argument("--commitment", choices=list(COMMITMENTS), default="none", help="term (default none: hourly)")
    s.add_argument(
        "--hourly-usd",
        type=float,
        help="the per-unit hourly rate from https://aws.amazon.com/bedrock/pricing/ (default: read from the "
        "AWS Price List API; asked for when it lists none)",
    )
    s.add_argument("--name", help="provisioned model name (default <job>-pt)")
    s.add_argument("--yes", action="store_true", help="create it; without --yes only the cost is printed")
    s.set_defaults(func=cmd_titan_provision)
    s = sub.add_parser("deprovision", help="delete a job's provisioned throughput (its hourly charge stops)")
    s.add_argument("job", help="the Titan job name")
    s.set_defaults(func=cmd_titan_deprovision)


def cmd_titan_provision(args: argparse.Namespace) -> int:
    """State the hourly cost; with --yes create the provisioned throughput."""
    from carmatch.aws import make_client
    from carmatch.cloud import titan_provision
    from carmatch.cloud.titan_pricing import PRICING_REGION

    region = args.settings.aws_region
    pricing = make_client("pricing", PRICING_REGION) if args.hourly_usd is None else None
    with runtime_for(args) as runtime:
        plan = titan_provision.plan_provision(
            runtime.catalog, args.job, args.units, args.commitment, args.hourly_usd, args.name, pricing, region
        )
        print(plan.statement())
        if not args.yes:
            print("Nothing was created. Run again with --yes to create it.")
            return 0
        arn = titan_provision.provision(make_client("bedrock", region), runtime.catalog, plan, region)
    print(
        f"Created {arn}. Search with it: CARMATCH_MODEL=bedrock/{arn} "
        "(.venv/bin/carmatch aws check shows when it is InService)"
    )
    return 0


def cmd_titan_deprovision(args: argparse.Namespace) -> int:
    """Delete the job's provisioned throughput."""
    from carmatch.aws import make_client
    from carmatch.cloud import titan_provision

    region = args.settings.aws_region
    with runtime_for(args) as runtime:
        arn = titan_provision.deprovision(make_client("bedrock", region), runtime.catalog, args.job, region)
    print(f"Deleted {arn}; its hourly charge has stopped.")
    return 0
