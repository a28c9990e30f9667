"""Claude captions on Bedrock, batch: split the records into jobs, upload them, create the jobs.

``submit_batch`` writes ``{"recordId", "modelInput"}`` records (their format lives in
:mod:`carmatch.captions.batch_records`), splits them into files and jobs that respect Bedrock's
batch quotas, uploads them, creates the jobs and records them in the catalog. Following the jobs
(status, collect, wait) lives in :mod:`carmatch.captions.batch_collect`. The bedrock and s3
clients are passed in.
"""

from __future__ import annotations

import logging
import re
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from carmatch.aws import explain_aws_error, normalise_bucket, normalise_prefix
from carmatch.captions import batch_jobs as jobs_db
from carmatch.captions.batch_records import INVOCATION_TYPE, jsonl_line, record_id_for
from carmatch.captions.frame_context import frame_contexts
from carmatch.captions.live import prepare_with_frame
from carmatch.captions.prompt import PROMPT_VERSION
from carmatch.catalog import Catalog
from carmatch.config import Settings
from carmatch.errors import ImageError, InvalidInputError
from carmatch.progress import Progress, no_progress

log = logging.getLogger(__name__)

SOURCE_BATCH = "claude-batch"
# Bedrock's ModelInvocationJobName pattern (botocore service model), at most 63 characters.
JOB_NAME_PATTERN = re.compile(r"[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}")
JOB_NAME_MAX_CHARS = 63
ROLE_ARN_PATTERN = re.compile(r"arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+")
FOLLOW_WITH_CLI = "Follow them with: .venv/bin/carmatch caption batch status"


_Entry = tuple[str, int, int]  # a record in the staging file: (image id, offset, length in bytes)


class BatchTooSmallError(InvalidInputError):
    """Fewer images than a Bedrock batch job accepts; caption them live instead."""


# -- records and splitting ------------------------------------------------------------------
@dataclass(frozen=True)
class BatchLimits:
    """Bedrock batch quotas for the caption model (accounts can raise some of them)."""

    min_records: int = 100
    max_records_per_job: int = 50_000
    max_records_per_file: int = 50_000
    max_file_bytes: int = 1_000_000_000
    max_job_bytes: int = 5_000_000_000

    @classmethod
    def from_settings(cls, settings: Settings) -> BatchLimits:
        """The limits configured by the CARMATCH_BATCH_* settings."""
        return cls(
            settings.batch_min_records,
            settings.batch_max_records_per_job,
            settings.batch_max_records_per_file,
            settings.batch_max_file_bytes,
            settings.batch_max_job_bytes,
        )


def plan_jobs(sizes: Sequence[int], limits: BatchLimits) -> list[list[list[int]]]:
    """Split records (by their line sizes in bytes) into jobs of files within ``limits``.

    Returns jobs -> files -> record indexes. Every job holds at least ``min_records``.
    """
    total = len(sizes)
    if total < limits.min_records:
        raise BatchTooSmallError(
            field="batch_records",
            value=total,
            limit=(limits.min_records, None),
            label="A Bedrock batch job",
            reason=f"needs at least {limits.min_records} records and there are only {total} images to caption",
            hint="Caption them live instead: .venv/bin/carmatch caption live "
            "(or lower CARMATCH_BATCH_MIN_RECORDS if your account's quota allows).",
        )
    for i, size in enumerate(sizes):
        if size > min(limits.max_file_bytes, limits.max_job_bytes):
            raise InvalidInputError(
                f"Record {i} is {size} bytes, over the batch file limit of {limits.max_file_bytes}."
            )
    jobs: list[list[int]] = []
    current: list[int] = []
    current_bytes = 0
    for i, size in enumerate(sizes):
        if current and (len(current) >= limits.max_records_per_job or current_bytes + size > limits.max_job_bytes):
            jobs.append(current)
            current, current_bytes = [], 0
        current.append(i)
        current_bytes += size
    jobs.append(current)
    if len(jobs) > 1 and len(jobs[-1]) < limits.min_records:
        need = limits.min_records - len(jobs[-1])
        previous, last = jobs[-2], jobs[-1]
        moved = previous[-need:]
        merged = moved + last
        if (
            len(previous) - need < limits.min_records
            or sum(sizes[i] for i in merged) > limits.max_job_bytes
            or len(merged) > limits.max_records_per_job
        ):
            raise InvalidInputError(
                "Cannot split the records into jobs that all hold the minimum number of records "
                "within the size limits; check the CARMATCH_BATCH_* settings."
            )
        jobs[-2], jobs[-1] = previous[:-need], merged
    return [_split_files(job, sizes, limits) for job in jobs]


def _split_files(indexes: list[int], sizes: Sequence[int], limits: BatchLimits) -> list[list[int]]:
    files: list[list[int]] = []
    current: list[int] = []
    current_bytes = 0
    for i in indexes:
        if current and (
            len(current) >= limits.max_records_per_file or current_bytes + sizes[i] > limits.max_file_bytes
        ):
            files.append(current)
            current, current_bytes = [], 0
        current.append(i)
        current_bytes += sizes[i]
    files.append(current)
    return files


def make_job_name(when: datetime, token: str, number: int) -> str:
    """A job name Bedrock accepts, e.g. carmatch-caption-20250101-120000-ab12-01."""
    name = f"carmatch-caption-{when:%Y%m%d-%H%M%S}-{token}-{number:02d}"
    check_job_name(name)
    return name


def check_job_name(name: str) -> None:
    """Raise InvalidInputError unless ``name`` matches Bedrock's job-name pattern and length."""
    if len(name) > JOB_NAME_MAX_CHARS or not JOB_NAME_PATTERN.fullmatch(name):
        raise InvalidInputError(f"{name!r} is not a valid Bedrock job name (letters, digits and dashes, ≤ 63).")


# -- submit ---------------------------------------------------------------------------------
def check_destination(bucket: str | None, role_arn: str | None) -> tuple[str, str]:
    """(bucket name, role ARN) a batch job writes to and runs as; errors name the ``bucket`` / ``role_arn`` field."""
    bucket = normalise_bucket(
        bucket, hint="Give the bucket for the batch input and output, or set CARMATCH_BATCH_BUCKET."
    )
    role_arn = (role_arn or "").strip()
    if not ROLE_ARN_PATTERN.fullmatch(role_arn):
        raise InvalidInputError(
            field="role_arn",
            value=role_arn,
            label="Service role",
            reason=f"{role_arn!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)",
            hint="See the README for the service role batch jobs need (or set CARMATCH_BATCH_ROLE_ARN).",
        )
    return bucket, role_arn


@dataclass
class SubmitReport:
    """What ``submit_batch`` sent."""

    jobs: list[str] = field(default_factory=list)
    records: int = 0
    files: int = 0
    bytes: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    def summary(self, follow: str = FOLLOW_WITH_CLI) -> str:
        """One paragraph; ``follow`` says how to follow the jobs (the app names its buttons)."""
        text = (
            f"Submitted {self.records} images in {len(self.jobs)} batch job(s), {self.files} file(s), "
            f"{self.bytes / 1e6:.1f} MB: {', '.join(self.jobs)}."
        )
        if self.unreadable:
            text += f" {len(self.unreadable)} unreadable images were left out (recorded as failures)."
        return f"{text} {follow}"


def submit_batch(
    catalog: Catalog,
    bedrock: Any,
    s3: Any,
    settings: Settings,
    image_ids: Sequence[str],
    *,
    bucket: str,
    prefix: str,
    role_arn: str,
    overwrite_human: bool = False,
    progress: Progress = no_progress,
    now: datetime | None = None,
) -> SubmitReport:
    """Write, upload and submit batch captioning jobs for ``image_ids``; records every job in the catalog."""
    limits = BatchLimits.from_settings(settings)
    bucket, role_arn = check_destination(bucket, role_arn)
    prefix = normalise_prefix(prefix)
    ids = _not_in_a_job(catalog, image_ids)
    if len(ids) < limits.min_records:
        plan_jobs([0] * len(ids), limits)  # raises BatchTooSmallError with advice
    when = now or datetime.now(timezone.utc)
    token = secrets.token_hex(2)
    report = SubmitReport()
    settings.home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="batch-", dir=settings.home) as tmp:
        staged = Path(tmp) / "records.jsonl"
        entries = _stage_records(catalog, ids, settings, staged, report, progress)
        plan = plan_jobs([length for _, _, length in entries], limits)
        uploads = _UploadProgress(sum(len(files) for files in plan), progress)
        for number, files in enumerate(plan, 1):
            name = make_job_name(when, token, number)
            base = f"{prefix}/{name}" if prefix else name
            input_uri = f"s3://{bucket}/{base}/input/"
            output_uri = f"s3://{bucket}/{base}/output/"
            keys, pairs, job_bytes = _upload_job_files(
                s3, settings, bucket, base, name, files, staged, entries, uploads
            )
            params = _job_params(settings, bucket, keys, job_bytes, overwrite_human)
            jobs_db.insert_job(catalog, name, input_uri, output_uri, params, pairs)
            _create_job(catalog, bedrock, name, input_uri, output_uri, role_arn, settings)
            report.jobs.append(name)
            report.records += len(pairs)
            report.files += len(files)
            report.bytes += job_bytes
    return report


def _not_in_a_job(catalog: Catalog, image_ids: Sequence[str]) -> list[str]:
    """``image_ids`` once each, less the images already waiting in a batch job."""
    busy = jobs_db.busy_image_ids(catalog)
    ids = [i for i in dict.fromkeys(image_ids) if i not in busy]
    if len(image_ids) and len(ids) < len(set(image_ids)):
        log.info("%d images are already waiting in a batch job and are left out", len(set(image_ids)) - len(ids))
    return ids


@dataclass
class _UploadProgress:
    """Counts the files uploaded over every job of a run and reports each one."""

    total: int
    progress: Progress
    done: int = 0

    def step(self) -> None:
        """One more file uploaded."""
        self.done += 1
        self.progress(self.done, self.total, f"uploading {self.done}/{self.total} files")


def _upload_job_files(
    s3: Any,
    settings: Settings,
    bucket: str,
    base: str,
    name: str,
    files: list[list[int]],
    staged: Path,
    entries: list[_Entry],
    uploads: _UploadProgress,
) -> tuple[list[str], list[tuple[str, str]], int]:
    """Cut job ``name``'s files out of the staged records and upload them: (keys, (recordId, image id) pairs, bytes)."""
    keys: list[str] = []
    pairs: list[tuple[str, str]] = []
    job_bytes = 0
    for part, indexes in enumerate(files, 1):
        key = f"{base}/input/part-{part:04d}.jsonl"
        path = staged.parent / f"{name}-{part:04d}.jsonl"
        job_bytes += _write_part(staged, entries, indexes, path)
        _upload(s3, path, bucket, key, settings.aws_region)
        path.unlink()
        keys.append(key)
        uploads.step()
        pairs.extend((record_id_for(i), entries[i][0]) for i in indexes)
    return keys, pairs, job_bytes


def _job_params(
    settings: Settings, bucket: str, keys: list[str], job_bytes: int, overwrite_human: bool
) -> dict[str, Any]:
    """What the catalog keeps about a job for collecting it: model, prompt version, files, region."""
    return {
        "model": settings.caption_model,
        "prompt_version": PROMPT_VERSION,
        "overwrite_human": overwrite_human,
        "bucket": bucket,
        "files": keys,
        "bytes": job_bytes,
        "region": settings.aws_region,
    }


def _stage_records(
    catalog: Catalog,
    ids: list[str],
    settings: Settings,
    staged: Path,
    report: SubmitReport,
    progress: Progress,
) -> list[_Entry]:
    """Write every record line to one staging file; returns (image id, offset, length) per record."""
    records = catalog.get_many(ids)
    contexts = frame_contexts(catalog, list(records))  # small crops go with their frame
    entries: list[_Entry] = []
    offset = 0
    with staged.open("wb") as out:
        for done, image_id in enumerate(ids, 1):
            record = records.get(image_id)
            if record is not None:
                try:
                    prepared = prepare_with_frame(record.path, settings, contexts.get(image_id))
                except ImageError as exc:
                    report.unreadable.append((image_id, str(exc)))
                    catalog.record_caption_failure(
                        image_id,
                        SOURCE_BATCH,
                        f"image unreadable: {exc}",
                        model=settings.caption_model,
                        prompt_version=PROMPT_VERSION,
                    )
                else:
                    # recordIds are assigned by position in the staged file, so a job's ids stay unique.
                    line = jsonl_line(
                        record_id_for(len(entries)), prepared, settings.caption_model, settings.caption_max_tokens
                    )
                    out.write(line)
                    entries.append((image_id, offset, len(line)))
                    offset += len(line)
            progress(done, len(ids), f"preparing {done}/{len(ids)} images")
    return entries


def _write_part(staged: Path, entries: list[_Entry], indexes: list[int], path: Path) -> int:
    written = 0
    with staged.open("rb") as src, path.open("wb") as out:
        for i in indexes:
            _, offset, length = entries[i]
            src.seek(offset)
            out.write(src.read(length))
            written += length
    return written


def _upload(s3: Any, path: Path, bucket: str, key: str, region: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        # upload_file sends a file of up to 1 GB in parts (multipart past 8 MiB), read from disk as it goes.
        s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": "application/jsonl"})
    except (ClientError, BotoCoreError) as exc:
        raise explain_aws_error(exc, f"upload s3://{bucket}/{key}", region) from exc


def _create_job(
    catalog: Catalog, bedrock: Any, name: str, input_uri: str, output_uri: str, role_arn: str, settings: Settings
) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = bedrock.create_model_invocation_job(
            jobName=name,
            roleArn=role_arn,
            clientRequestToken=name,
            modelId=settings.caption_model,
            inputDataConfig={"s3InputDataConfig": {"s3InputFormat": "JSONL", "s3Uri": input_uri}},
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": output_uri}},
            modelInvocationType=INVOCATION_TYPE,
            timeoutDurationInHours=settings.batch_timeout_hours,
        )
    except (ClientError, BotoCoreError) as exc:
        error = explain_aws_error(exc, f"create batch job {name}", settings.aws_region)
        catalog.update_job(name, status="SubmitFailed", message=str(error))
        jobs_db.mark_unanswered(catalog, name, "cancelled")
        raise error from exc
    catalog.update_job(name, status="Submitted", arn=response["jobArn"])
    log.info("Submitted batch job %s (%s)", name, response["jobArn"])
