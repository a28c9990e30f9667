"""Bedrock batch captioning jobs as the captioning code sees them: statuses, job views, record states.

A job's ``id`` is its Bedrock job name; each ``recordId`` of the job's JSONL maps to the image it
describes, with a status (pending, done, failed, kept-human, deleted, missing) that makes
collecting idempotent. The rows live in the catalog (:mod:`carmatch.catalog.jobs`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from carmatch.catalog import Catalog
from carmatch.catalog.jobs import RECORD_PENDING, JobRow
from carmatch.errors import NotFoundError

JOB_KIND = "caption-batch"

# Bedrock's ModelInvocationJobStatus values (botocore service model), plus two of carmatch's own
# for jobs whose create call never succeeded.
ACTIVE_STATUSES = ("Submitted", "Validating", "Scheduled", "InProgress", "Stopping")
TERMINAL_STATUSES = ("Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired")
COLLECTABLE_STATUSES = ("Completed", "PartiallyCompleted", "Stopped", "Expired")
LOCAL_STATUSES = ("Submitting", "SubmitFailed")

RECORD_STATES = ("pending", "done", "failed", "kept-human", "deleted", "missing", "cancelled")

__all__ = [
    "ACTIVE_STATUSES",
    "COLLECTABLE_STATUSES",
    "JOB_KIND",
    "LOCAL_STATUSES",
    "RECORD_PENDING",
    "RECORD_STATES",
    "TERMINAL_STATUSES",
    "BatchJob",
]


@dataclass
class BatchJob(JobRow):
    """One batch captioning job as recorded in the catalog."""

    @classmethod
    def of(cls, row: JobRow) -> BatchJob:
        """The batch job view of a catalog job row."""
        return cls(**{f.name: getattr(row, f.name) for f in fields(row)})

    @property
    def bedrock_job_id(self) -> str | None:
        """The id Bedrock uses in output paths: the last part of the job ARN."""
        return self.arn.rsplit("/", 1)[-1] if self.arn else None

    @property
    def is_active(self) -> bool:
        """True while Bedrock may still be working on it."""
        return self.status in ACTIVE_STATUSES

    @property
    def record_count(self) -> int:
        """How many records (images) the job holds."""
        return sum(self.records.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view for the CLI and the app."""
        return {
            "id": self.id,
            "status": self.status,
            "message": self.message,
            "arn": self.arn,
            "input_uri": self.input_uri,
            "output_uri": self.output_uri,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "collected_at": self.collected_at,
            "records": dict(self.records),
            "progress": self.params.get("progress"),
        }


def insert_job(
    catalog: Catalog,
    job_id: str,
    input_uri: str,
    output_uri: str,
    params: dict[str, Any],
    records: Sequence[tuple[str, str]],
) -> None:
    """Record a job about to be submitted, with its (record id, image id) pairs, atomically."""
    catalog.insert_job(job_id, JOB_KIND, "Submitting", input_uri, output_uri, params, records)


def list_jobs(catalog: Catalog, job_ids: Iterable[str] | None = None) -> list[BatchJob]:
    """Batch captioning jobs, oldest first (all, or those named)."""
    jobs = [BatchJob.of(row) for row in catalog.jobs(JOB_KIND)]
    if job_ids is None:
        return jobs
    wanted = list(job_ids)
    known = {job.id for job in jobs}
    unknown = [j for j in wanted if j not in known]
    if unknown:
        raise NotFoundError(
            f"No batch captioning job named {unknown[0]!r}; see `.venv/bin/carmatch caption batch status`."
        )
    chosen = set(wanted)
    return [job for job in jobs if job.id in chosen]


def get_job(catalog: Catalog, job_id: str) -> BatchJob:
    """One job by name; NotFoundError when unknown."""
    return list_jobs(catalog, [job_id])[0]


def record_lookup(catalog: Catalog, job_id: str, record_id: str) -> tuple[str, str] | None:
    """(image id, status) of one record of a job, or None when the job has no such record."""
    return catalog.job_record(job_id, record_id)


def set_record_status(catalog: Catalog, job_id: str, record_id: str, status: str) -> None:
    """Mark one record (inside the caller's transaction, when there is one)."""
    catalog.set_job_record_status(job_id, record_id, status)


def mark_unanswered(catalog: Catalog, job_id: str, status: str = "missing") -> int:
    """Mark the records still pending (no output line) with ``status``; returns how many."""
    return catalog.mark_pending_job_records(job_id, status)


def busy_image_ids(catalog: Catalog) -> set[str]:
    """Images waiting in a batch job that is running or finished but not yet collected."""
    return catalog.pending_job_image_ids(JOB_KIND, ACTIVE_STATUSES, COLLECTABLE_STATUSES)
