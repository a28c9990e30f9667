"""The Dataset tab's "Claude batch jobs" panel as plain functions: submit, refresh, collect.

Each function takes the runtime, the session's password (checked again on every call, before
anything else) and optional boto3 clients; tests pass clients wrapped by ``botocore.stub.Stubber``
or backed by moto, the app passes none and gets real ones once AWS credentials are found.
Functions return (report text, jobs table rows); :mod:`carmatch.ui.caption_jobs_panel` shows them.
"""

from __future__ import annotations

import logging
from typing import Any

from carmatch.access import is_admin
from carmatch.aws import make_client, normalise_bucket
from carmatch.captions import batch_jobs as jobs_db
from carmatch.captions.batch_collect import collect_job, refresh_jobs
from carmatch.captions.batch_jobs import BatchJob
from carmatch.captions.batch_submit import ROLE_ARN_PATTERN, BatchLimits, BatchTooSmallError, plan_jobs, submit_batch
from carmatch.captions.live import require_credentials, select_images
from carmatch.errors import InvalidInputError
from carmatch.progress import Progress, no_progress
from carmatch.runtime import Runtime
from carmatch.ui.dataset_actions import require_admin

log = logging.getLogger(__name__)

Rows = list[list[Any]]

JOBS_HEADERS = ["name", "status", "message", "records", "created", "collected"]
LIVE_ADVICE = "In the app: open Bulk actions, choose 'everything matching the filters' and 'caption with Claude'."


def _client(service: str, runtime: Runtime, given: Any) -> Any:
    """``given`` when a test passed one in, else a real client; AwsError with set-up help when no credentials."""
    if given is not None:
        return given
    require_credentials()
    return make_client(service, runtime.settings.aws_region)


# -- showing ---------------------------------------------------------------------------------
def defaults(runtime: Runtime) -> tuple[str, str, str]:
    """(bucket, prefix, role ARN) to prefill, from CARMATCH_BATCH_BUCKET / _PREFIX / _ROLE_ARN."""
    s = runtime.settings
    return s.batch_bucket, s.batch_prefix, s.batch_role_arn


def _when(stamp: str | None) -> str:
    return (stamp or "").replace("T", " ")[:16]


def _records(job: BatchJob) -> str:
    total = job.record_count
    progress = job.params.get("progress") or {}
    if job.is_active and progress:
        return f"{total} ({progress.get('processedRecordCount', 0)} processed)"
    settled = {state: n for state, n in sorted(job.records.items()) if state != jobs_db.RECORD_PENDING}
    if not settled:
        return str(total)
    return f"{total} ({', '.join(f'{n} {state}' for state, n in settled.items())})"


def job_rows(runtime: Runtime) -> Rows:
    """The jobs table, newest first: name, status, message, records, created, collected."""
    return [
        [job.id, job.status, job.message or "", _records(job), _when(job.created_at), _when(job.collected_at)]
        for job in reversed(jobs_db.list_jobs(runtime.catalog))
    ]


def on_unlock(
    runtime: Runtime, session_password: str | None, bucket: str, prefix: str, role_arn: str
) -> tuple[Any, ...]:
    """After unlocking: (bucket, prefix, role ARN, jobs rows); the settings fill empty boxes. Locked: all blank."""
    if not is_admin(runtime.settings, session_password):
        return bucket, prefix, role_arn, []
    default_bucket, default_prefix, default_role = defaults(runtime)
    return bucket or default_bucket, prefix or default_prefix, role_arn or default_role, job_rows(runtime)


# -- submit ----------------------------------------------------------------------------------
def _check_destination(bucket: str, role_arn: str) -> tuple[str, str]:
    """The bucket name and role ARN as typed, checked with messages that name the panel's boxes."""
    role_arn = (role_arn or "").strip()
    hint = "Enter the bucket that holds the batch input and output, or set CARMATCH_BATCH_BUCKET."
    bucket = normalise_bucket(bucket, hint=hint)
    if not ROLE_ARN_PATTERN.fullmatch(role_arn):
        raise InvalidInputError(
            f"Service role {role_arn!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME); "
            "see the README for the role batch jobs need (or set CARMATCH_BATCH_ROLE_ARN)."
        )
    return bucket, role_arn


def submit(
    runtime: Runtime,
    session_password: str | None,
    bucket: str,
    prefix: str,
    role_arn: str,
    progress: Progress = no_progress,
    *,
    bedrock: Any = None,
    s3: Any = None,
) -> tuple[str, Rows]:
    """Submit batch jobs for the images `caption batch submit` would pick; returns (report, jobs rows)."""
    require_admin(runtime, session_password)
    bucket, role_arn = _check_destination(bucket, role_arn)
    catalog, settings = runtime.catalog, runtime.settings
    ids = select_images(catalog)
    if not ids:
        message = (
            "The collection is empty: add images first."
            if catalog.count() == 0
            else "Nothing to caption: every image has a caption from this prompt or from a person."
        )
        return message, job_rows(runtime)
    busy = jobs_db.busy_image_ids(catalog)
    free = [i for i in ids if i not in busy]
    if not free:
        return (
            f"All {len(ids)} image(s) to caption are already waiting in batch jobs: "
            "press 'Refresh status', then 'Collect finished jobs' once they have ended.",
            job_rows(runtime),
        )
    try:
        if len(free) < settings.batch_min_records:  # refuse before asking for AWS credentials
            plan_jobs([0] * len(free), BatchLimits.from_settings(settings))
        report = submit_batch(
            catalog,
            _client("bedrock", runtime, bedrock),
            _client("s3", runtime, s3),
            settings,
            free,
            bucket=bucket,
            prefix=(prefix or "").strip(),
            role_arn=role_arn,
            progress=progress,
        )
    except BatchTooSmallError as exc:
        raise BatchTooSmallError(f"{exc} {LIVE_ADVICE}") from exc
    text = report.summary().replace(
        "Follow them with: python -m admin caption batch status",
        "Press 'Refresh status' to follow them, then 'Collect finished jobs' once they have ended.",
    )
    return text, job_rows(runtime)


# -- refresh / collect -----------------------------------------------------------------------
def _status_line(jobs: list[BatchJob]) -> str:
    if not jobs:
        return "No batch jobs yet: fill in the bucket and role, then press 'Submit batch job'."
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    waiting = sum(1 for j in jobs if j.arn and not j.is_active and not j.collected_at)
    text = f"{len(jobs)} batch job(s): " + ", ".join(f"{n} {status}" for status, n in counts.items()) + "."
    if waiting:
        text += f" {waiting} ended and not collected yet: press 'Collect finished jobs'."
    return text


def refresh(runtime: Runtime, session_password: str | None, *, bedrock: Any = None) -> tuple[str, Rows]:
    """Ask Bedrock for the status of every running job (no AWS call when none runs); returns (summary, rows)."""
    require_admin(runtime, session_password)
    jobs = jobs_db.list_jobs(runtime.catalog)
    if any(job.is_active for job in jobs):
        jobs = refresh_jobs(runtime.catalog, _client("bedrock", runtime, bedrock), region=runtime.settings.aws_region)
    return _status_line(jobs), job_rows(runtime)


def collect(
    runtime: Runtime,
    session_password: str | None,
    progress: Progress = no_progress,
    *,
    bedrock: Any = None,
    s3: Any = None,
) -> tuple[str, Rows]:
    """Refresh running jobs, then store the captions of every ended, uncollected job; returns (report, rows)."""
    require_admin(runtime, session_password)
    catalog, region = runtime.catalog, runtime.settings.aws_region
    jobs = jobs_db.list_jobs(catalog)
    if any(job.is_active for job in jobs):
        jobs = refresh_jobs(catalog, _client("bedrock", runtime, bedrock), region=region)
    names = [j.id for j in jobs if j.arn and not j.is_active and not j.collected_at]
    if not names:
        running = sum(1 for j in jobs if j.is_active)
        text = f"No finished jobs to collect; {running} still running." if running else "No finished jobs to collect."
        return text, job_rows(runtime)
    client = _client("s3", runtime, s3)
    lines, stored, failed = [], 0, 0
    for done, name in enumerate(names, 1):
        report = collect_job(catalog, client, name, region=region)
        stored += report.captioned
        failed += report.failed
        lines.append(report.summary())
        progress(done, len(names), f"collected {done}/{len(names)} jobs")
    head = f"Stored {stored} caption(s), {failed} failed, from {len(names)} job(s). New captions start unreviewed."
    return "\n".join([head, *lines]), job_rows(runtime)
