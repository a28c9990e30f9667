"""The Dataset tab's "Claude batch jobs" panel as plain functions: submit, refresh, collect.

Each function takes the runtime, the session's password (checked again on every call, before
anything else) and optional boto3 clients; tests pass clients wrapped by ``botocore.stub.Stubber``
or backed by moto, the app passes none and gets real ones once AWS credentials are found.
Functions return (report text, jobs table rows); :mod:`carmatch.ui.caption_jobs_panel` shows them.
The library checks the bucket, role and batch size; its errors are phrased with the panel's labels.
"""

from __future__ import annotations

import logging
from typing import Any

from carmatch.access import is_admin
from carmatch.aws import has_credentials, make_client, service_regions
from carmatch.bedrock_models import region_partition
from carmatch.captions import batch_jobs as jobs_db
from carmatch.captions.batch_collect import collect_finished, refresh_jobs
from carmatch.captions.batch_jobs import BatchJob
from carmatch.captions.batch_submit import BatchLimits, check_destination, plan_jobs, submit_batch
from carmatch.captions.live import require_credentials
from carmatch.captions.select import select_images
from carmatch.cloud.aws_check import OK, PROBLEM, WARNING, check_account, run_checks
from carmatch.progress import Progress, no_progress
from carmatch.runtime import Runtime
from carmatch.ui.dataset_actions import require_admin
from carmatch.ui.phrasing import phrased

log = logging.getLogger(__name__)

Rows = list[list[Any]]

JOBS_HEADERS = ["name", "status", "message", "records", "created", "collected"]
FOLLOW_IN_APP = "Press 'Refresh status' to follow them, then 'Collect finished jobs' once they have ended."


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


def readiness(bucket: str | None, role_arn: str | None, credentials: bool | None = None) -> str:
    """What is missing before Submit can work (AWS credentials, bucket, role), said before anyone presses it."""
    missing = []
    if not (has_credentials() if credentials is None else credentials):
        missing.append(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) "
            "where the app runs, then restart it"
        )
    if not (bucket or "").strip():
        missing.append("no S3 bucket: fill in **S3 bucket** (or set CARMATCH_BATCH_BUCKET)")
    if not (role_arn or "").strip():
        missing.append("no service role: fill in **Batch service role ARN** (or set CARMATCH_BATCH_ROLE_ARN)")
    if not missing:
        return "✅ Ready to submit: AWS credentials found, bucket and role filled in."
    return "⚠️ Before submitting: " + "; ".join(missing) + "."


CHECK_MARKS = {OK: "✅", WARNING: "⚠️", PROBLEM: "❌"}


def aws_check(
    runtime: Runtime, session_password: str | None, bucket: str | None, role_arn: str | None, *, clients: Any = None
) -> str:
    """``aws check`` for this panel (admin only): the CLI's checks, with the bucket and role typed in the boxes."""
    require_admin(runtime, session_password)
    s = runtime.settings
    settings = s.with_overrides(
        batch_bucket=(bucket or "").strip() or s.batch_bucket,
        batch_role_arn=(role_arn or "").strip() or s.batch_role_arn,
    )
    lines = (
        check_account(settings)
        if clients is None
        else run_checks(settings, clients, service_regions("bedrock", region_partition(settings.aws_region)))
    )
    return "\n".join(
        f"- {CHECK_MARKS[line.status]} **{line.name}**: {line.detail}" + (f" *Fix:* {line.fix}" if line.fix else "")
        for line in lines
    )


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
@phrased
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
    bucket, role_arn = check_destination(bucket, role_arn)  # before anything else, in the panel's labels
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
    return report.summary(follow=FOLLOW_IN_APP), job_rows(runtime)


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
    run = collect_finished(
        runtime.catalog,
        lambda: _client("s3", runtime, s3),
        bedrock=lambda: _client("bedrock", runtime, bedrock),
        region=runtime.settings.aws_region,
        progress=progress,
    )
    return run.summary(), job_rows(runtime)
