"""Following Bedrock batch captioning jobs: status polling, collecting the results, waiting.

``refresh_jobs`` asks Bedrock for each running job's status, ``collect_job`` reads
``<output>/<job-id>/*.jsonl.out`` (lines in any order, matched by ``recordId``) and stores the
captions of one job. ``collect_finished`` is the one way to collect: the CLI's ``collect``, the
Dataset tab's button and ``wait_for_jobs`` (which polls with a growing pause until every job has
ended) all call it. Collecting twice changes nothing. The bedrock and s3 clients are passed in.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carmatch.aws import explain_aws_error, parse_s3_uri
from carmatch.captions import batch_jobs as jobs_db
from carmatch.captions.batch_jobs import ACTIVE_STATUSES, BatchJob
from carmatch.captions.batch_submit import SOURCE_BATCH
from carmatch.captions.live import reply_from_converse
from carmatch.captions.prompt import PROMPT_VERSION, CaptionReplyError, parse_caption_reply
from carmatch.captions.retry import Sleep
from carmatch.catalog import Catalog
from carmatch.errors import CarmatchError, InvalidInputError, NotFoundError
from carmatch.progress import Progress, no_progress

log = logging.getLogger(__name__)

POLL_SECONDS = 60.0
MAX_POLL_SECONDS = 900.0


class BatchWaitTimeout(CarmatchError):
    """Batch jobs were still running when ``wait`` gave up."""


# -- status ---------------------------------------------------------------------------------
def refresh_jobs(
    catalog: Catalog, bedrock: Any, job_ids: Iterable[str] | None = None, region: str = ""
) -> list[BatchJob]:
    """Ask Bedrock for the status of every job still running (or those named); returns all of them."""
    from botocore.exceptions import BotoCoreError, ClientError

    named = list(job_ids) if job_ids is not None else None
    for job in jobs_db.list_jobs(catalog, named):
        if not job.arn or (named is None and not job.is_active):
            continue
        try:
            reply = bedrock.get_model_invocation_job(jobIdentifier=job.arn)
        except (ClientError, BotoCoreError) as exc:
            raise explain_aws_error(exc, f"get the status of batch job {job.id}", region) from exc
        params = dict(job.params)
        params["progress"] = {
            key: reply[key]
            for key in ("totalRecordCount", "processedRecordCount", "successRecordCount", "errorRecordCount")
            if key in reply
        }
        catalog.update_job(job.id, status=reply["status"], message=reply.get("message") or "", params=params)
    return jobs_db.list_jobs(catalog, named)


# -- collect --------------------------------------------------------------------------------
@dataclass
class CollectReport:
    """What collecting one job stored."""

    job_id: str
    captioned: int = 0
    failed: int = 0
    kept_human: int = 0
    deleted: int = 0
    missing: int = 0
    already: int = 0
    unknown: int = 0
    malformed: int = 0
    files: int = 0
    skipped: bool = False  # collected before; nothing read

    def summary(self) -> str:
        """One line for the CLI and the app."""
        if self.skipped:
            return f"{self.job_id}: already collected."
        text = f"{self.job_id}: {self.captioned} captioned, {self.failed} failed"
        extras = [
            (self.kept_human, "kept their human caption"),
            (self.missing, "had no output (run again to retry them)"),
            (self.deleted, "were deleted meanwhile"),
            (self.already, "were collected before"),
            (self.unknown, "output lines had an unknown recordId"),
            (self.malformed, "output lines were not JSON"),
        ]
        return text + "".join(f", {n} {what}" for n, what in extras if n) + f" ({self.files} file(s))."


def reply_from_output(output: dict[str, Any]) -> str:
    """The reply text of one batch record: a Converse response (carmatch's jobs) or, for jobs submitted
    before batch used the Converse type, an Anthropic Messages response."""
    if "output" in output or "stopReason" in output:
        return reply_from_converse(output)
    return reply_from_messages(output)


def reply_from_messages(output: dict[str, Any]) -> str:
    """The text of an Anthropic Messages response; CaptionReplyError when refused or cut off."""
    blocks = output.get("content") or []
    text = "".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text")
    stop = output.get("stop_reason")
    if stop == "refusal":
        raise CaptionReplyError("model declined (refusal)", text, refusal=True)
    if stop == "max_tokens":
        raise CaptionReplyError("reply cut off (max_tokens); raise CARMATCH_CAPTION_MAX_TOKENS", text)
    return text


def collect_job(catalog: Catalog, s3: Any, job_id: str, *, force: bool = False, region: str = "") -> CollectReport:
    """Store the captions of one ended job from its ``.jsonl.out`` files; collecting twice changes nothing."""
    from botocore.exceptions import BotoCoreError, ClientError

    job = jobs_db.get_job(catalog, job_id)
    report = CollectReport(job_id)
    if job.status in ACTIVE_STATUSES or job.status == "Submitting":
        raise InvalidInputError(
            f"Batch job {job_id} is {job.status}; collect it when it has ended (.venv/bin/carmatch caption batch wait)."
        )
    if job.collected_at and not force:
        report.skipped = True
        return report
    if job.arn and job.output_uri and job.status != "Failed":  # a failed job wrote no records
        label = "The job's output URI"
        bucket, prefix = parse_s3_uri(job.output_uri, require_key=False, field="output_uri", label=label)
        prefix = f"{prefix.rstrip('/')}/{job.bedrock_job_id}/" if prefix.strip("/") else f"{job.bedrock_job_id}/"
        try:
            keys = _output_keys(s3, bucket, prefix)
            with tempfile.TemporaryDirectory(prefix="collect-") as tmp:
                for key in keys:
                    local = Path(tmp) / "part.jsonl.out"
                    _download(s3, bucket, key, local)
                    with local.open("rb") as lines:
                        for line in lines:
                            if line.strip():
                                _store_line(catalog, job, line, report)
                    report.files += 1
        except (ClientError, BotoCoreError) as exc:
            raise explain_aws_error(exc, f"read the output of batch job {job_id}", region) from exc
    report.missing = jobs_db.mark_unanswered(catalog, job_id, "missing")
    catalog.update_job(job_id, collected=True)
    log.info("Collected %s", report.summary())
    return report


def _output_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    """The ``.jsonl.out`` result files under ``prefix``, read page by page with S3's own paginator."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".jsonl.out"))
    return sorted(keys)  # manifest.json.out is left out: it holds counts only


def _download(s3: Any, bucket: str, key: str, path: Path) -> None:
    """One result file to ``path`` through s3transfer: ranged parts, each retried when a connection drops."""
    s3.download_file(bucket, key, str(path))


def _store_line(catalog: Catalog, job: BatchJob, line: bytes, report: CollectReport) -> None:
    try:
        data = json.loads(line)
        record_id = data["recordId"]
    except (ValueError, KeyError, TypeError):
        report.malformed += 1
        log.warning("Job %s: skipping an output line that is not a JSON record", job.id)
        return
    model = job.params.get("model")
    prompt_version = job.params.get("prompt_version", PROMPT_VERSION)
    with catalog.transaction():  # look up and store under one write lock: no double store
        found = jobs_db.record_lookup(catalog, job.id, str(record_id))
        if found is None:
            report.unknown += 1
            return
        image_id, status = found
        if status not in (jobs_db.RECORD_PENDING, "missing"):
            report.already += 1
            return
        try:
            output = data.get("modelOutput")
            if not isinstance(output, dict):
                error = data.get("error") or {"errorMessage": "no modelOutput in the output line"}
                raise CaptionReplyError(_describe_error(error), json.dumps(error))
            parsed = parse_caption_reply(reply_from_output(output))
        except CaptionReplyError as exc:
            catalog.record_caption_failure(
                image_id,
                SOURCE_BATCH,
                str(exc),
                raw=exc.raw,
                model=model,
                prompt_version=prompt_version,
                job_id=job.id,
            )
            jobs_db.set_record_status(catalog, job.id, record_id, "failed")
            report.failed += 1
            return
        try:
            version = catalog.set_caption(
                image_id,
                parsed.caption,
                SOURCE_BATCH,
                attributes=parsed.attributes,
                model=model,
                prompt_version=prompt_version,
                overwrite_human=bool(job.params.get("overwrite_human")),
            )
        except NotFoundError:
            jobs_db.set_record_status(catalog, job.id, record_id, "deleted")
            report.deleted += 1
            return
        if version is None:
            jobs_db.set_record_status(catalog, job.id, record_id, "kept-human")
            report.kept_human += 1
        else:
            jobs_db.set_record_status(catalog, job.id, record_id, "done")
            report.captioned += 1


def _describe_error(error: Any) -> str:
    if isinstance(error, dict):
        code = error.get("errorCode", "")
        message = error.get("errorMessage") or error.get("message") or json.dumps(error)
        return f"batch record error {code}: {message}".replace("  ", " ")
    return f"batch record error: {error}"


# -- collect every finished job --------------------------------------------------------------
ClientFactory = Callable[[], Any]  # makes a client when one is needed (no credentials asked otherwise)


@dataclass
class CollectRun:
    """What ``collect_finished`` did: one CollectReport per job collected, and how many still run."""

    reports: list[CollectReport] = field(default_factory=list)
    running: int = 0

    @property
    def captioned(self) -> int:
        """Captions stored, over every job."""
        return sum(r.captioned for r in self.reports)

    @property
    def failed(self) -> int:
        """Records that failed, over every job."""
        return sum(r.failed for r in self.reports)

    def summary(self) -> str:
        """A head line with the totals, then one line per job."""
        if not self.reports:
            still = f"; {self.running} still running" if self.running else ""
            return f"No finished jobs to collect{still}."
        head = (
            f"Stored {self.captioned} caption(s), {self.failed} failed, from {len(self.reports)} job(s). "
            "New captions start unreviewed."
        )
        return "\n".join([head, *(r.summary() for r in self.reports)])


def collect_finished(
    catalog: Catalog,
    s3: ClientFactory,
    job_ids: Iterable[str] | None = None,
    *,
    bedrock: ClientFactory | None = None,
    force: bool = False,
    region: str = "",
    progress: Progress = no_progress,
) -> CollectRun:
    """Collect every ended job not collected yet (all ended ones with ``force``), or exactly the jobs named.

    With ``bedrock`` the status of running jobs is refreshed first. Each factory is called only when
    its client is needed: nothing running means no Bedrock call, nothing to collect no S3 client.
    """
    named = list(job_ids) if job_ids is not None else None
    jobs = jobs_db.list_jobs(catalog, named)
    if bedrock is not None and any(job.is_active for job in jobs):
        jobs = refresh_jobs(catalog, bedrock(), named, region)
    if named is not None:
        targets = named  # collect_job says why a named job cannot be collected yet
    else:
        targets = [j.id for j in jobs if j.arn and not j.is_active and (force or not j.collected_at)]
    run = CollectRun(running=sum(1 for job in jobs if job.is_active))
    if not targets:
        return run
    client = s3()
    for done, job_id in enumerate(targets, 1):
        run.reports.append(collect_job(catalog, client, job_id, force=force, region=region))
        progress(done, len(targets), f"collected {done}/{len(targets)} jobs")
    return run


# -- wait -----------------------------------------------------------------------------------
def wait_for_jobs(
    catalog: Catalog,
    bedrock: Any,
    s3: Any,
    job_ids: Iterable[str] | None = None,
    *,
    region: str = "",
    sleep: Sleep = time.sleep,
    poll_seconds: float = POLL_SECONDS,
    max_poll_seconds: float = MAX_POLL_SECONDS,
    timeout_seconds: float | None = None,
    on_status: Callable[[list[BatchJob]], None] | None = None,
) -> list[CollectReport]:
    """Poll the uncollected jobs (or those named) with a growing pause until all ended, then collect them."""
    named = list(job_ids) if job_ids is not None else None
    targets = named or [j.id for j in jobs_db.list_jobs(catalog) if j.arn and not j.collected_at]
    if not targets:
        return []
    delay, waited = poll_seconds, 0.0
    while True:
        jobs = refresh_jobs(catalog, bedrock, targets, region)
        if on_status is not None:
            on_status(jobs)
        if not any(job.is_active for job in jobs):
            break
        if timeout_seconds is not None and waited >= timeout_seconds:
            running = ", ".join(f"{j.id} ({j.status})" for j in jobs if j.is_active)
            raise BatchWaitTimeout(
                f"Gave up waiting after {waited:.0f}s; still running: {running}. "
                "Run `.venv/bin/carmatch caption batch wait` again later: nothing is lost."
            )
        sleep(delay)
        waited += delay
        delay = min(max_poll_seconds, delay * 1.5)
    return collect_finished(catalog, lambda: s3, [job.id for job in jobs if job.arn], region=region).reports
