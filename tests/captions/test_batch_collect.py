"""collect_finished: the one way finished batch jobs are collected (the CLI, the Dataset tab and wait)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from admin import caption_cmds
from admin.cli import main
from carmatch.captions import batch_collect
from carmatch.captions import batch_jobs as jobs_db
from carmatch.captions.batch_collect import collect_finished, wait_for_jobs
from carmatch.catalog import Catalog
from carmatch.config import load_settings
from carmatch.errors import InvalidInputError
from carmatch.runtime import Runtime
from carmatch.ui import caption_jobs_actions
from tests.caption_support import add_cars, reply_json, stubbed
from tests.captions.test_caption_batch import BUCKET, job_status_response, ok_line, put_output, recorded_job

PASSWORD = "s3cret-pass"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated carmatch home with an admin password."""
    home = tmp_path / "home"
    monkeypatch.setenv("CARMATCH_HOME", str(home))
    monkeypatch.setenv("CARMATCH_ADMIN_PASSWORD", PASSWORD)
    return home


@pytest.fixture
def catalog(home: Path) -> Iterator[Catalog]:
    cat = Catalog(home / "carmatch.db")
    yield cat
    cat.close()


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto S3 with an empty bucket."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def two_jobs(catalog: Catalog, tmp_path: Path, s3: Any) -> tuple[jobs_db.BatchJob, jobs_db.BatchJob]:
    """A completed job with two answers in S3 and a job still running."""
    ids = add_cars(catalog, tmp_path / "cars", 4, size=(32, 24))
    done = recorded_job(catalog, ids[:2], name="carmatch-caption-test-01", status="Completed")
    running = recorded_job(catalog, ids[2:], name="carmatch-caption-test-02", status="InProgress")
    put_output(s3, done, [ok_line("r0000000000", reply_json("red")), ok_line("r0000000001", reply_json("blue"))])
    put_output(s3, running, [ok_line("r0000000000", reply_json("green")), ok_line("r0000000001", reply_json())])
    return done, running


def test_each_ended_job_is_collected_once_and_no_client_is_made_for_nothing(
    catalog: Catalog, tmp_path: Path, s3: Any
) -> None:
    done, running = two_jobs(catalog, tmp_path, s3)
    made: list[str] = []

    def s3_client() -> Any:
        made.append("s3")
        return s3

    run = collect_finished(catalog, s3_client)  # no bedrock factory: the running job is not polled
    assert [r.job_id for r in run.reports] == [done.id] and (run.captioned, run.failed, run.running) == (2, 0, 1)
    assert run.summary().splitlines() == [
        "Stored 2 caption(s), 0 failed, from 1 job(s). New captions start unreviewed.",
        f"{done.id}: 2 captioned, 0 failed (1 file(s)).",
    ]
    again = collect_finished(catalog, s3_client)
    assert again.reports == [] and again.summary() == "No finished jobs to collect; 1 still running."
    assert made == ["s3"]  # the second call had nothing to collect, so it asked for no client
    assert jobs_db.get_job(catalog, running.id).collected_at is None


def test_with_bedrock_running_jobs_are_polled_first_and_collected_when_ended(
    catalog: Catalog, tmp_path: Path, s3: Any
) -> None:
    done, running = two_jobs(catalog, tmp_path, s3)
    collect_finished(catalog, lambda: s3)
    bedrock, stubber = stubbed("bedrock")
    stubber.add_response(
        "get_model_invocation_job",
        job_status_response(running, "Completed", processed=2),
        {"jobIdentifier": running.arn},
    )
    run = collect_finished(catalog, lambda: s3, bedrock=lambda: bedrock)
    stubber.assert_no_pending_responses()  # only the running job was polled
    assert [r.job_id for r in run.reports] == [running.id] and run.captioned == 2 and run.running == 0
    assert collect_finished(catalog, lambda: s3, bedrock=lambda: bedrock).reports == []  # nothing runs: no call


def test_named_jobs_are_collected_exactly_and_a_running_one_is_refused(
    catalog: Catalog, tmp_path: Path, s3: Any
) -> None:
    done, running = two_jobs(catalog, tmp_path, s3)
    assert collect_finished(catalog, lambda: s3, [done.id]).captioned == 2
    assert collect_finished(catalog, lambda: s3, [done.id]).reports[0].skipped
    assert collect_finished(catalog, lambda: s3, [done.id], force=True).reports[0].already == 2
    with pytest.raises(InvalidInputError, match="InProgress"):
        collect_finished(catalog, lambda: s3, [running.id])
    assert jobs_db.get_job(catalog, running.id).collected_at is None


def test_the_cli_the_dataset_tab_and_wait_collect_through_it(
    home: Path, catalog: Catalog, tmp_path: Path, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    done, running = two_jobs(catalog, tmp_path, s3)
    catalog.update_job(running.id, status="Completed")
    callers: list[str] = []

    def spy(name: str) -> Any:
        def collect(*args: Any, **kwargs: Any) -> batch_collect.CollectRun:
            callers.append(name)
            return collect_finished(*args, **kwargs)

        return collect

    monkeypatch.setattr(caption_cmds, "collect_finished", spy("cli"))
    monkeypatch.setattr(caption_cmds, "make_client", lambda service, region, **_: s3)
    monkeypatch.setattr(caption_jobs_actions, "collect_finished", spy("tab"))
    monkeypatch.setattr(batch_collect, "collect_finished", spy("wait"))

    assert main(["caption", "batch", "collect", "--job", done.id]) == 0
    runtime = Runtime(load_settings())
    try:
        text, _ = caption_jobs_actions.collect(runtime, PASSWORD, s3=s3)
    finally:
        runtime.close()
    assert text.startswith("Stored 2 caption(s)") and running.id in text
    bedrock, stubber = stubbed("bedrock")
    stubber.add_response("get_model_invocation_job", job_status_response(done, "Completed", processed=2))
    assert wait_for_jobs(catalog, bedrock, s3, [done.id], sleep=lambda s: None)[0].skipped
    assert callers == ["cli", "tab", "wait"]
