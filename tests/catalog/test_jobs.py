"""Catalog jobs: a job and its records round-trip, are marked idempotently, and tell which images are busy."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from carmatch.catalog import Catalog

KIND = "caption-batch"
RUNNING = ("Submitted", "InProgress")
UNCOLLECTED = ("Completed", "Stopped")


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog(tmp_path / "c.db")
    for n in range(3):
        cat.add_image(f"{n}" * 64, f"/photos/{n}.jpg", 64, 48)
    yield cat
    cat.close()


def _insert(catalog: Catalog, job_id: str = "job-1", kind: str = KIND) -> list[str]:
    ids = [f"{n}" * 64 for n in range(3)]
    records = [(f"r{n}", image_id) for n, image_id in enumerate(ids)]
    catalog.insert_job(job_id, kind, "Submitting", "s3://b/in/", "s3://b/out/", {"model": "m", "n": 3}, records)
    return ids


def test_job_round_trips_with_its_record_counts_after_reopening(catalog: Catalog, tmp_path: Path) -> None:
    ids = _insert(catalog)
    _insert(catalog, "other-kind", kind="titan")
    catalog.update_job("job-1", status="InProgress", arn="arn:aws:bedrock:x:1:model-invocation-job/abc")
    catalog.set_job_record_status("job-1", "r1", "done")
    catalog.close()
    reopened = Catalog(tmp_path / "c.db")
    (job,) = reopened.jobs(KIND)
    assert (job.id, job.status, job.arn) == ("job-1", "InProgress", "arn:aws:bedrock:x:1:model-invocation-job/abc")
    assert (job.input_uri, job.output_uri, job.params) == ("s3://b/in/", "s3://b/out/", {"model": "m", "n": 3})
    assert job.records == {"pending": 2, "done": 1} and job.collected_at is None
    assert reopened.job_record("job-1", "r1") == (ids[1], "done")
    assert reopened.job_record("job-1", "r9") is None and reopened.job_record("nope", "r1") is None
    assert [j.id for j in reopened.jobs("titan")] == ["other-kind"]
    reopened.close()


def test_update_leaves_unnamed_fields_and_stamps_collection(catalog: Catalog) -> None:
    _insert(catalog)
    catalog.update_job("job-1", status="Completed", message="done", params={"progress": {"total": 3}})
    catalog.update_job("job-1", collected=True)
    (job,) = catalog.jobs(KIND)
    assert (job.status, job.message, job.params) == ("Completed", "done", {"progress": {"total": 3}})
    assert job.collected_at is not None and job.updated_at >= job.created_at


def test_insert_is_all_or_nothing(catalog: Catalog) -> None:
    records = [("r0", "0" * 64), ("r0", "1" * 64)]  # the same record id twice
    with pytest.raises(sqlite3.IntegrityError):
        catalog.insert_job("job-1", KIND, "Submitting", "s3://b/in/", "s3://b/out/", {}, records)
    assert catalog.jobs(KIND) == []


def test_pending_records_are_marked_once(catalog: Catalog) -> None:
    _insert(catalog)
    catalog.set_job_record_status("job-1", "r0", "done")
    assert catalog.mark_pending_job_records("job-1", "missing") == 2
    assert catalog.mark_pending_job_records("job-1", "missing") == 0
    assert catalog.jobs(KIND)[0].records == {"done": 1, "missing": 2}


def test_record_status_rolls_back_with_the_callers_transaction(catalog: Catalog) -> None:
    _insert(catalog)
    with pytest.raises(RuntimeError):
        with catalog.transaction():
            catalog.set_job_record_status("job-1", "r0", "done")
            raise RuntimeError("crash before the caption is stored")
    assert catalog.job_record("job-1", "r0") == ("0" * 64, "pending")


@pytest.mark.parametrize(
    ("status", "collected", "busy"),
    [("InProgress", False, True), ("Completed", False, True), ("Completed", True, False), ("Failed", False, False)],
)
def test_busy_images_are_pending_in_a_running_or_uncollected_job(
    catalog: Catalog, status: str, collected: bool, busy: bool
) -> None:
    ids = _insert(catalog)
    catalog.set_job_record_status("job-1", "r0", "done")
    catalog.update_job("job-1", status=status, collected=collected)
    expected = set(ids[1:]) if busy else set()
    assert catalog.pending_job_image_ids(KIND, RUNNING, UNCOLLECTED) == expected
    assert catalog.pending_job_image_ids("titan", RUNNING, UNCOLLECTED) == set()
