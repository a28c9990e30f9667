"""Bedrock batch captioning jobs as the catalog records them: the ``jobs`` and ``job_records`` tables.

A job row's ``id`` is its Bedrock job name; ``job_records`` maps each ``recordId`` of the job's
JSONL to the image it describes, with a status (pending, done, failed, kept-human, deleted,
missing) that makes collecting idempotent.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from carmatch.catalog import Catalog, now_iso
from carmatch.errors import NotFoundError

JOB_KIND = "caption-batch"

# Bedrock's ModelInvocationJobStatus values (botocore service model), plus two of carmatch's own
# for jobs whose create call never succeeded.
ACTIVE_STATUSES = ("Submitted", "Validating", "Scheduled", "InProgress", "Stopping")
TERMINAL_STATUSES = ("Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired")
COLLECTABLE_STATUSES = ("Completed", "PartiallyCompleted", "Stopped", "Expired")
LOCAL_STATUSES = ("Submitting", "SubmitFailed")

RECORD_PENDING = "pending"
RECORD_STATES = ("pending", "done", "failed", "kept-human", "deleted", "missing", "cancelled")


@dataclass
class BatchJob:
    """One batch captioning job as recorded in the catalog."""

    id: str
    status: str
    arn: str | None = None
    message: str | None = None
    input_uri: str | None = None
    output_uri: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""
    collected_at: str | None = None
    records: dict[str, int] = field(default_factory=dict)  # record status -> count

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


def _job_from_row(row: sqlite3.Row, counts: dict[str, int]) -> BatchJob:
    return BatchJob(
        id=row["id"],
        status=row["status"],
        arn=row["arn"],
        message=row["message"],
        input_uri=row["input_uri"],
        output_uri=row["output_uri"],
        params=json.loads(row["params"]) if row["params"] else {},
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        collected_at=row["collected_at"],
        records=counts,
    )


def insert_job(
    catalog: Catalog,
    job_id: str,
    input_uri: str,
    output_uri: str,
    params: dict[str, Any],
    records: Sequence[tuple[str, str]],
) -> None:
    """Record a job about to be submitted, with its (record id, image id) pairs, atomically."""
    stamp = now_iso()
    with catalog.transaction() as conn:
        conn.execute(
            "INSERT INTO jobs (id, kind, name, status, input_uri, output_uri, params, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (job_id, JOB_KIND, job_id, "Submitting", input_uri, output_uri, json.dumps(params), stamp, stamp),
        )
        conn.executemany(
            "INSERT INTO job_records (job_id, record_id, image_id, status) VALUES (?,?,?,?)",
            [(job_id, record_id, image_id, RECORD_PENDING) for record_id, image_id in records],
        )


def update_job(
    catalog: Catalog,
    job_id: str,
    *,
    status: str | None = None,
    message: str | None = None,
    arn: str | None = None,
    params: dict[str, Any] | None = None,
    collected: bool = False,
) -> None:
    """Change some fields of a job row (None leaves a field alone)."""
    sets, values = ["updated_at=?"], [now_iso()]
    for column, value in (("status", status), ("message", message), ("arn", arn)):
        if value is not None:
            sets.append(f"{column}=?")
            values.append(value)
    if params is not None:
        sets.append("params=?")
        values.append(json.dumps(params))
    if collected:
        sets.append("collected_at=?")
        values.append(now_iso())
    with catalog.transaction() as conn:
        conn.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id=?", (*values, job_id))


def list_jobs(catalog: Catalog, job_ids: Iterable[str] | None = None) -> list[BatchJob]:
    """Batch captioning jobs, oldest first (all, or those named)."""
    rows = catalog.execute("SELECT * FROM jobs WHERE kind=? ORDER BY created_at, id", (JOB_KIND,))
    if job_ids is not None:
        wanted = list(job_ids)
        known = {r["id"] for r in rows}
        unknown = [j for j in wanted if j not in known]
        if unknown:
            raise NotFoundError(
                f"No batch captioning job named {unknown[0]!r}; see `python -m admin caption batch status`."
            )
        rows = [r for r in rows if r["id"] in set(wanted)]
    counts: dict[str, dict[str, int]] = {}
    for row in catalog.execute(
        "SELECT r.job_id, r.status, COUNT(*) FROM job_records r JOIN jobs j ON j.id=r.job_id"
        " WHERE j.kind=? GROUP BY r.job_id, r.status",
        (JOB_KIND,),
    ):
        counts.setdefault(row[0], {})[row[1]] = int(row[2])
    return [_job_from_row(r, counts.get(r["id"], {})) for r in rows]


def get_job(catalog: Catalog, job_id: str) -> BatchJob:
    """One job by name; NotFoundError when unknown."""
    return list_jobs(catalog, [job_id])[0]


def record_lookup(catalog: Catalog, job_id: str, record_id: str) -> tuple[str, str] | None:
    """(image id, status) of one record of a job, or None when the job has no such record."""
    rows = catalog.execute(
        "SELECT image_id, status FROM job_records WHERE job_id=? AND record_id=?", (job_id, record_id)
    )
    return (rows[0]["image_id"], rows[0]["status"]) if rows else None


def set_record_status(conn: sqlite3.Connection, job_id: str, record_id: str, status: str) -> None:
    """Mark one record (inside the caller's transaction)."""
    conn.execute("UPDATE job_records SET status=? WHERE job_id=? AND record_id=?", (status, job_id, record_id))


def mark_unanswered(catalog: Catalog, job_id: str, status: str = "missing") -> int:
    """Mark the records still pending (no output line) with ``status``; returns how many."""
    with catalog.transaction() as conn:
        return conn.execute(
            "UPDATE job_records SET status=? WHERE job_id=? AND status=?", (status, job_id, RECORD_PENDING)
        ).rowcount


def busy_image_ids(catalog: Catalog) -> set[str]:
    """Images waiting in a batch job that is running or finished but not yet collected."""
    marks = ",".join("?" * len(ACTIVE_STATUSES))
    collectable = ",".join("?" * len(COLLECTABLE_STATUSES))
    rows = catalog.execute(
        "SELECT DISTINCT r.image_id FROM job_records r JOIN jobs j ON j.id=r.job_id"
        f" WHERE j.kind=? AND r.status=? AND (j.status IN ({marks})"
        f" OR (j.status IN ({collectable}) AND j.collected_at IS NULL))",
        (JOB_KIND, RECORD_PENDING, *ACTIVE_STATUSES, *COLLECTABLE_STATUSES),
    )
    return {r[0] for r in rows}
