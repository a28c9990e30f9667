"""Long-running jobs in the catalog: the ``jobs`` table and each job's ``job_records``.

A job row's ``id`` is its name; ``job_records`` maps each record id of the job's input to the
image it describes, with a status that makes collecting the job's results idempotent.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from carmatch.catalog.connection import CatalogBase
from carmatch.catalog.schema import now_iso

RECORD_PENDING = "pending"


@dataclass
class JobRow:
    """One row of the ``jobs`` table with how many of its records are in each status."""

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

    @classmethod
    def from_row(cls, row: sqlite3.Row, counts: dict[str, int]) -> JobRow:
        """Build from a row of the jobs table and its record counts."""
        return cls(
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


class JobsMixin(CatalogBase):
    """Queries on the ``jobs`` and ``job_records`` tables."""

    def insert_job(
        self,
        job_id: str,
        kind: str,
        status: str,
        input_uri: str,
        output_uri: str,
        params: dict[str, Any],
        records: Sequence[tuple[str, str]],
    ) -> None:
        """Record a job with its (record id, image id) pairs, all pending, atomically."""
        stamp = now_iso()
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO jobs (id, kind, name, status, input_uri, output_uri, params, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (job_id, kind, job_id, status, input_uri, output_uri, json.dumps(params), stamp, stamp),
            )
            conn.executemany(
                "INSERT INTO job_records (job_id, record_id, image_id, status) VALUES (?,?,?,?)",
                [(job_id, record_id, image_id, RECORD_PENDING) for record_id, image_id in records],
            )

    def update_job(
        self,
        job_id: str,
        *,
        status: str | None = None,
        message: str | None = None,
        arn: str | None = None,
        params: dict[str, Any] | None = None,
        collected: bool = False,
    ) -> None:
        """Change some fields of a job row (None leaves a field alone); ``collected`` stamps collected_at."""
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
        with self._transaction() as conn:
            conn.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id=?", (*values, job_id))

    def jobs(self, kind: str) -> list[JobRow]:
        """Every job of one kind, oldest first, with its record counts."""
        rows = self._execute("SELECT * FROM jobs WHERE kind=? ORDER BY created_at, id", (kind,))
        counts: dict[str, dict[str, int]] = {}
        for row in self._execute(
            "SELECT r.job_id, r.status, COUNT(*) FROM job_records r JOIN jobs j ON j.id=r.job_id"
            " WHERE j.kind=? GROUP BY r.job_id, r.status",
            (kind,),
        ):
            counts.setdefault(row[0], {})[row[1]] = int(row[2])
        return [JobRow.from_row(r, counts.get(r["id"], {})) for r in rows]

    def add_job_records(self, job_id: str, records: Sequence[tuple[str, str, str]]) -> None:
        """Add (record id, image id, status) rows to a job (joins the caller's transaction when there is one)."""
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO job_records (job_id, record_id, image_id, status) VALUES (?,?,?,?)",
                [(job_id, record_id, image_id, status) for record_id, image_id, status in records],
            )

    def job_records(self, job_id: str) -> list[tuple[str, str, str]]:
        """Every (record id, image id, status) of one job, in insertion order."""
        rows = self._execute(
            "SELECT record_id, image_id, status FROM job_records WHERE job_id=? ORDER BY rowid", (job_id,)
        )
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def job_record(self, job_id: str, record_id: str) -> tuple[str, str] | None:
        """(image id, status) of one record of a job, or None when the job has no such record."""
        rows = self._execute(
            "SELECT image_id, status FROM job_records WHERE job_id=? AND record_id=?", (job_id, record_id)
        )
        return (str(rows[0]["image_id"]), str(rows[0]["status"])) if rows else None

    def set_job_record_status(self, job_id: str, record_id: str, status: str) -> None:
        """Mark one record of a job (joins the caller's transaction when there is one)."""
        with self._transaction() as conn:
            conn.execute("UPDATE job_records SET status=? WHERE job_id=? AND record_id=?", (status, job_id, record_id))

    def mark_pending_job_records(self, job_id: str, status: str) -> int:
        """Mark the records of a job still pending with ``status``; returns how many."""
        with self._transaction() as conn:
            return conn.execute(
                "UPDATE job_records SET status=? WHERE job_id=? AND status=?", (status, job_id, RECORD_PENDING)
            ).rowcount

    def pending_job_image_ids(
        self, kind: str, running_statuses: Iterable[str], uncollected_statuses: Iterable[str]
    ) -> set[str]:
        """Images with a pending record in a job that is running, or ended but not yet collected.

        A job counts when its status is one of ``running_statuses``, or one of
        ``uncollected_statuses`` and it has no ``collected_at``.
        """
        running, uncollected = list(running_statuses), list(uncollected_statuses)
        marks, collectable = ",".join("?" * len(running)), ",".join("?" * len(uncollected))
        rows = self._execute(
            "SELECT DISTINCT r.image_id FROM job_records r JOIN jobs j ON j.id=r.job_id"
            f" WHERE j.kind=? AND r.status=? AND (j.status IN ({marks})"
            f" OR (j.status IN ({collectable}) AND j.collected_at IS NULL))",
            (kind, RECORD_PENDING, *running, *uncollected),
        )
        return {r[0] for r in rows}
