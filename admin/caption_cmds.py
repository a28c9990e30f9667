"""Caption commands: Claude on Bedrock, live (`caption live`) and batch (`caption batch ...`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from admin.common import TqdmProgress, runtime_for
from carmatch.aws import make_client
from carmatch.captions.batch_collect import collect_finished, refresh_jobs, wait_for_jobs
from carmatch.captions.batch_jobs import BatchJob, list_jobs
from carmatch.captions.batch_submit import submit_batch
from carmatch.captions.live import bedrock_runtime_client, caption_live, require_credentials
from carmatch.captions.select import select_images
from carmatch.catalog import Catalog
from carmatch.config import Settings
from carmatch.errors import InvalidInputError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the caption commands to the admin parser."""
    p = subparsers.add_parser("caption", help="write captions with Claude on AWS Bedrock")
    sub = p.add_subparsers(dest="caption_command", metavar="ACTION", required=True)

    live = sub.add_parser("live", help="caption a few images now, a few requests at a time")
    _add_selection(live)
    live.set_defaults(func=cmd_live)

    batch = sub.add_parser("batch", help="caption thousands of images with Bedrock batch inference (about half price)")
    bsub = batch.add_subparsers(dest="batch_command", metavar="ACTION", required=True)
    submit = bsub.add_parser("submit", help="write the JSONL, upload it to S3 and create the batch job(s)")
    submit.add_argument("--bucket", help="S3 bucket for the job input and output (default CARMATCH_BATCH_BUCKET)")
    submit.add_argument("--prefix", help="folder in the bucket (default CARMATCH_BATCH_PREFIX, carmatch-batch)")
    submit.add_argument(
        "--role-arn",
        help="IAM service role Bedrock assumes to read and write the bucket (default CARMATCH_BATCH_ROLE_ARN)",
    )
    _add_selection(submit)
    submit.set_defaults(func=cmd_batch_submit)

    status = bsub.add_parser("status", help="show every batch job with its Bedrock status")
    status.add_argument("--json", action="store_true", help="print as JSON")
    status.set_defaults(func=cmd_batch_status)

    collect = bsub.add_parser("collect", help="store the captions of ended jobs (safe to repeat)")
    collect.add_argument("--job", action="append", metavar="NAME", help="only this job (repeatable)")
    collect.add_argument("--force", action="store_true", help="read the output again even if collected before")
    collect.set_defaults(func=cmd_batch_collect)

    wait = bsub.add_parser("wait", help="poll until the jobs have ended, then collect them")
    wait.add_argument("--job", action="append", metavar="NAME", help="only this job (repeatable)")
    wait.add_argument("--timeout", type=float, metavar="SECONDS", help="give up after this long (default: never)")
    wait.add_argument(
        "--poll", type=float, default=60.0, metavar="SECONDS", help="first pause between polls (default 60)"
    )
    wait.set_defaults(func=cmd_batch_wait)


def _add_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ids", nargs="+", metavar="ID", help="only these images (full ids or unique prefixes)")
    p.add_argument("--only-missing", action="store_true", help="only images with no caption at all")
    p.add_argument("--overwrite-human", action="store_true", help="also replace captions a person wrote")
    p.add_argument("--redo", action="store_true", help="caption again images Claude already captioned with this prompt")


def _select(catalog: Catalog, args: argparse.Namespace) -> list[str]:
    return select_images(
        catalog, args.ids, only_missing=args.only_missing, overwrite_human=args.overwrite_human, redo=args.redo
    )


def _client(service: str, settings: Settings) -> Any:
    require_credentials()
    if service == "bedrock-runtime":  # live captioning: bulk work, throttling retried by botocore
        return bedrock_runtime_client(settings)
    return make_client(service, settings.aws_region)


def cmd_live(args: argparse.Namespace) -> int:
    """Caption the selected images with `converse`; prints a summary."""
    settings: Settings = args.settings
    with runtime_for(args) as runtime:
        ids = _select(runtime.catalog, args)
        if not ids:
            if runtime.catalog.count() == 0:
                print("The collection is empty: add images first with .venv/bin/carmatch ingest DIR")
            else:
                print("Nothing to caption: the selected images have a caption from this prompt or a person.")
            return 0
        client = _client("bedrock-runtime", settings)
        progress = TqdmProgress()
        try:
            report = caption_live(
                runtime.catalog, client, ids, settings, overwrite_human=args.overwrite_human, progress=progress
            )
        finally:
            progress.close()
        print(report.summary())
        for image_id, reason in report.failures[:20]:
            print(f"  failed {image_id[:12]}: {reason}")
        return 0 if not report.failed else 1


def cmd_batch_submit(args: argparse.Namespace) -> int:
    """Submit batch captioning jobs for the selected images."""
    settings: Settings = args.settings
    with runtime_for(args) as runtime:
        ids = _select(runtime.catalog, args)
        bedrock, s3 = _client("bedrock", settings), _client("s3", settings)
        progress = TqdmProgress()
        try:
            report = submit_batch(
                runtime.catalog,
                bedrock,
                s3,
                settings,
                ids,
                bucket=_required(args.bucket or settings.batch_bucket, "--bucket", "CARMATCH_BATCH_BUCKET"),
                prefix=args.prefix or settings.batch_prefix,
                role_arn=_required(args.role_arn or settings.batch_role_arn, "--role-arn", "CARMATCH_BATCH_ROLE_ARN"),
                overwrite_human=args.overwrite_human,
                progress=progress,
            )
        finally:
            progress.close()
        print(report.summary())
        return 0


def _print_jobs(jobs: list[BatchJob]) -> None:
    if not jobs:
        print("No batch captioning jobs yet: .venv/bin/carmatch caption batch submit --bucket B --role-arn ARN")
    for job in jobs:
        progress = job.params.get("progress") or {}
        done = f" {progress.get('processedRecordCount', 0)}/{progress.get('totalRecordCount', job.record_count)}"
        collected = " collected" if job.collected_at else ""
        print(f"{job.id}  {job.status:<18}{done if progress else ''}  {job.record_count} images{collected}")
        if job.message:
            print(f"    {job.message}")


def cmd_batch_status(args: argparse.Namespace) -> int:
    """Poll Bedrock for every running job and print all jobs."""
    settings: Settings = args.settings
    with runtime_for(args) as runtime:
        jobs = list_jobs(runtime.catalog)
        if any(job.is_active for job in jobs):
            jobs = refresh_jobs(runtime.catalog, _client("bedrock", settings), region=settings.aws_region)
        if args.json:
            print(json.dumps([job.to_dict() for job in jobs], indent=2))
        else:
            _print_jobs(jobs)
        return 0


def cmd_batch_collect(args: argparse.Namespace) -> int:
    """Collect the results of ended jobs into the catalog."""
    settings: Settings = args.settings
    with runtime_for(args) as runtime:
        run = collect_finished(
            runtime.catalog, lambda: _client("s3", settings), args.job, force=args.force, region=settings.aws_region
        )
        if not run.reports:
            print("No ended, uncollected batch jobs. See: .venv/bin/carmatch caption batch status")
        for report in run.reports:
            print(report.summary())
        return 0


def cmd_batch_wait(args: argparse.Namespace) -> int:
    """Poll until every job has ended, then collect them."""
    settings: Settings = args.settings
    with runtime_for(args) as runtime:
        bedrock, s3 = _client("bedrock", settings), _client("s3", settings)
        reports = wait_for_jobs(
            runtime.catalog,
            bedrock,
            s3,
            args.job,
            region=settings.aws_region,
            poll_seconds=args.poll,
            timeout_seconds=args.timeout,
            on_status=_print_jobs,
        )
        if not reports:
            print("No batch jobs to wait for.")
        for report in reports:
            print(report.summary())
        return 0


def _required(value: str | None, option: str, variable: str) -> str:
    """A value given as an option or a setting; InvalidInputError naming both when neither is set."""
    if not value:
        raise InvalidInputError(f"Give {option} (or set {variable}).")
    return value
