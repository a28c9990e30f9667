"""The Dataset tab's "Claude batch jobs" panel: password, submit, refresh, collect, missing credentials."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import gradio as gr
import pytest
from botocore.stub import ANY
from moto import mock_aws

from carmatch.captions import batch_jobs as jobs_db
from carmatch.captions.batch_submit import BatchTooSmallError
from carmatch.captions.prompt import PROMPT_VERSION
from carmatch.config import load_settings
from carmatch.errors import AccessDeniedError, AwsError, InvalidInputError
from carmatch.runtime import Runtime
from carmatch.ui import caption_jobs_actions as actions
from carmatch.ui import dataset_tab
from tests.caption_support import (
    MODEL,
    ROLE_ARN,
    add_cars,
    caption_settings,
    clear_aws_credentials,
    create_job_params,
    messages_output,
    reply_json,
    stubbed,
)

PASSWORD = "s3cret-pass"
BUCKET = "carmatch-panel"
JOB_ARN = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdef123456"
SMALL = dict(batch_min_records=2, batch_max_records_per_job=3, batch_max_records_per_file=2)


@pytest.fixture
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No AWS credentials anywhere boto3 looks (environment, files, instance metadata)."""
    clear_aws_credentials(monkeypatch, tmp_path)


@pytest.fixture
def runtime(tmp_path: Path, no_credentials: None) -> Iterator[Runtime]:
    """A home with an admin password and small batch limits; the model is never loaded."""
    settings = caption_settings(
        tmp_path, admin_password=PASSWORD, batch_bucket=BUCKET, batch_role_arn=ROLE_ARN, **SMALL
    )
    rt = Runtime(settings)
    yield rt
    rt.close()


@pytest.fixture
def s3() -> Iterator[Any]:
    """A moto S3 with an empty bucket (its own fake keys: the panel's credential check is not involved)."""
    with mock_aws():
        client = boto3.client(
            "s3", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        client.create_bucket(Bucket=BUCKET)
        yield client


def recorded_job(runtime: Runtime, image_ids: list[str], status: str, name: str = "carmatch-caption-panel-01") -> Any:
    """A job as submit_batch records it, without uploading anything."""
    base = f"batches/{name}"
    records = [(f"r{n:010d}", image_id) for n, image_id in enumerate(image_ids)]
    params = {"model": MODEL, "prompt_version": PROMPT_VERSION, "overwrite_human": False}
    catalog = runtime.catalog
    jobs_db.insert_job(catalog, name, f"s3://{BUCKET}/{base}/input/", f"s3://{BUCKET}/{base}/output/", params, records)
    catalog.update_job(name, status=status, arn=JOB_ARN)
    return jobs_db.get_job(catalog, name)


def status_response(job: Any, status: str, processed: int = 0) -> dict[str, Any]:
    return {
        "jobArn": job.arn,
        "jobName": job.id,
        "modelId": MODEL,
        "roleArn": ROLE_ARN,
        "status": status,
        "message": "",
        "submitTime": datetime(2025, 1, 1, tzinfo=timezone.utc),
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": job.input_uri}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": job.output_uri}},
        "modelInvocationType": "InvokeModel",
        "totalRecordCount": job.record_count,
        "processedRecordCount": processed,
    }


def put_output(s3: Any, job: Any, lines: list[dict[str, Any]]) -> None:
    """Write the job's output file where Bedrock does: <output>/<job id>/<input name>.out."""
    prefix = job.output_uri.removeprefix(f"s3://{BUCKET}/")
    body = "\n".join(json.dumps(line) for line in lines) + "\n"
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}{job.bedrock_job_id}/part-0001.jsonl.out", Body=body.encode())


def test_wrong_password_submits_polls_and_collects_nothing(runtime: Runtime, tmp_path: Path, s3: Any) -> None:
    ids = add_cars(runtime.catalog, tmp_path / "cars", 3, size=(32, 24))
    job = recorded_job(runtime, ids[:2], "Completed")
    put_output(s3, job, [{"recordId": "r0000000000", "modelOutput": messages_output(reply_json())}])
    bedrock, stubber = stubbed("bedrock")  # nothing queued: any call would fail the test
    for attempt in (
        lambda: actions.submit(runtime, "guess", BUCKET, "p", ROLE_ARN, bedrock=bedrock, s3=s3),
        lambda: actions.refresh(runtime, "", bedrock=bedrock),
        lambda: actions.collect(runtime, None, bedrock=bedrock, s3=s3),
    ):
        with pytest.raises(AccessDeniedError):
            attempt()
    stubber.assert_no_pending_responses()
    assert [j.id for j in jobs_db.list_jobs(runtime.catalog)] == [job.id]
    assert jobs_db.get_job(runtime.catalog, job.id).collected_at is None
    assert runtime.catalog.get(ids[0]).caption is None
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="p/")
    assert actions.on_unlock(runtime, "guess", "", "", "") == ("", "", "", [])  # no defaults, no jobs shown


def test_unlock_fills_the_boxes_from_settings_and_shows_the_jobs(runtime: Runtime, tmp_path: Path) -> None:
    ids = add_cars(runtime.catalog, tmp_path / "cars", 2, size=(32, 24))
    job = recorded_job(runtime, ids, "InProgress")
    bucket, prefix, role, rows = actions.on_unlock(runtime, PASSWORD, "", "", "")
    assert (bucket, prefix, role) == (BUCKET, "carmatch-batch", ROLE_ARN)
    assert [row[:4] for row in rows] == [[job.id, "InProgress", "", "2"]]
    assert actions.on_unlock(runtime, PASSWORD, "mine", "x", "")[:3] == ("mine", "x", ROLE_ARN)  # typed values kept


def test_batch_settings_come_from_the_environment() -> None:
    settings = load_settings(
        {"CARMATCH_BATCH_BUCKET": "b", "CARMATCH_BATCH_PREFIX": "p/q", "CARMATCH_BATCH_ROLE_ARN": ROLE_ARN}
    )
    assert (settings.batch_bucket, settings.batch_prefix, settings.batch_role_arn) == ("b", "p/q", ROLE_ARN)
    assert load_settings({}).batch_prefix == "carmatch-batch"


def test_submit_creates_a_job_for_the_images_the_cli_would_pick(runtime: Runtime, tmp_path: Path, s3: Any) -> None:
    ids = add_cars(runtime.catalog, tmp_path / "cars", 4, size=(32, 24))
    runtime.catalog.set_caption(ids[3], "a person wrote this", "human")  # the CLI leaves human captions alone
    bedrock, stubber = stubbed("bedrock")
    stubber.add_response(
        "create_model_invocation_job",
        {"jobArn": JOB_ARN},
        create_job_params(),
    )
    text, rows = actions.submit(runtime, PASSWORD, f"s3://{BUCKET}/", "/panel/", ROLE_ARN, bedrock=bedrock, s3=s3)
    stubber.assert_no_pending_responses()
    (job,) = jobs_db.list_jobs(runtime.catalog)
    assert "Submitted 3 images in 1 batch job(s), 2 file(s)" in text and "Refresh status" in text
    assert job.status == "Submitted" and job.arn == JOB_ARN and job.record_count == 3
    assert job.input_uri == f"s3://{BUCKET}/panel/{job.id}/input/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"panel/{job.id}/input/")["Contents"]]
    assert keys == job.params["files"] and len(keys) == 2
    assert rows == [[job.id, "Submitted", "", "3", ANY, ""]]
    # the same images are now waiting in the job: a second press submits nothing
    again, _ = actions.submit(runtime, PASSWORD, BUCKET, "panel", ROLE_ARN, bedrock=bedrock, s3=s3)
    assert "already waiting in batch jobs" in again and len(jobs_db.list_jobs(runtime.catalog)) == 1


def test_submit_checks_the_boxes_before_anything(runtime: Runtime, tmp_path: Path) -> None:
    add_cars(runtime.catalog, tmp_path / "cars", 3, size=(32, 24))
    with pytest.raises(InvalidInputError, match="S3 bucket"):
        actions.submit(runtime, PASSWORD, " ", "", ROLE_ARN)
    with pytest.raises(InvalidInputError, match="bucket name only"):
        actions.submit(runtime, PASSWORD, "s3://bucket/folder", "", ROLE_ARN)
    with pytest.raises(InvalidInputError, match="not an IAM role ARN"):
        actions.submit(runtime, PASSWORD, BUCKET, "", "carmatch-batch")
    assert jobs_db.list_jobs(runtime.catalog) == []


def test_submit_below_the_bedrock_minimum_suggests_live_captioning(runtime: Runtime, tmp_path: Path) -> None:
    runtime.settings = runtime.settings.with_overrides(batch_min_records=100)
    add_cars(runtime.catalog, tmp_path / "cars", 3, size=(32, 24))
    # no clients and no credentials: the minimum is checked first, with advice for the app
    with pytest.raises(BatchTooSmallError, match="at least 100 records.*only 3.*Caption them live.*Bulk actions"):
        actions.submit(runtime, PASSWORD, BUCKET, "", ROLE_ARN)
    assert jobs_db.list_jobs(runtime.catalog) == []


def test_refresh_shows_the_bedrock_status(runtime: Runtime, tmp_path: Path) -> None:
    ids = add_cars(runtime.catalog, tmp_path / "cars", 3, size=(32, 24))
    job = recorded_job(runtime, ids, "Submitted")
    bedrock, stubber = stubbed("bedrock")
    stubber.add_response(
        "get_model_invocation_job", status_response(job, "InProgress", processed=1), {"jobIdentifier": JOB_ARN}
    )
    text, rows = actions.refresh(runtime, PASSWORD, bedrock=bedrock)
    stubber.assert_no_pending_responses()
    assert text == "1 batch job(s): 1 InProgress."
    assert rows[0][:4] == [job.id, "InProgress", "", "3 (1 processed)"]


def test_refresh_with_no_running_job_needs_no_aws(runtime: Runtime, tmp_path: Path) -> None:
    text, rows = actions.refresh(runtime, PASSWORD)  # no client, no credentials
    assert "No batch jobs yet" in text and rows == []
    ids = add_cars(runtime.catalog, tmp_path / "cars", 2, size=(32, 24))
    recorded_job(runtime, ids, "Completed")
    text, _ = actions.refresh(runtime, PASSWORD)
    assert "1 Completed" in text and "1 ended and not collected yet" in text


def test_collect_polls_a_running_job_then_stores_its_captions(runtime: Runtime, tmp_path: Path, s3: Any) -> None:
    ids = add_cars(runtime.catalog, tmp_path / "cars", 3, size=(32, 24))
    job = recorded_job(runtime, ids, "InProgress")
    put_output(
        s3,
        job,
        [
            {"recordId": "r0000000002", "modelOutput": messages_output(reply_json("blue", "pickup"))},
            {"recordId": "r0000000000", "modelOutput": messages_output(reply_json("red", "sedan"))},
            {"recordId": "r0000000001", "error": {"errorCode": 400, "errorMessage": "bad image"}},
        ],
    )
    bedrock, stubber = stubbed("bedrock")
    stubber.add_response("get_model_invocation_job", status_response(job, "Completed", 3), {"jobIdentifier": JOB_ARN})
    text, rows = actions.collect(runtime, PASSWORD, bedrock=bedrock, s3=s3)
    stubber.assert_no_pending_responses()
    assert text.startswith("Stored 2 caption(s), 1 failed, from 1 job(s).")
    assert f"{job.id}: 2 captioned, 1 failed" in text
    red, failed, blue = (runtime.catalog.get(i) for i in ids)
    assert red.caption and "red sedan" in red.caption and red.caption_source == "claude-batch"
    assert blue.caption and "blue pickup" in blue.caption and red.review_state == "unreviewed"
    assert failed.caption is None
    assert rows[0][:4] == [job.id, "Completed", "", "3 (2 done, 1 failed)"] and rows[0][5]
    again, _ = actions.collect(runtime, PASSWORD, bedrock=bedrock, s3=s3)
    assert again == "No finished jobs to collect."


def test_missing_credentials_give_a_clear_message_and_change_nothing(runtime: Runtime, tmp_path: Path) -> None:
    ids = add_cars(runtime.catalog, tmp_path / "cars", 3, size=(32, 24))
    with pytest.raises(AwsError, match="credentials were not found.*AWS_ACCESS_KEY_ID"):
        actions.submit(runtime, PASSWORD, BUCKET, "panel", ROLE_ARN)
    assert jobs_db.list_jobs(runtime.catalog) == []
    running = recorded_job(runtime, ids[:2], "InProgress", name="carmatch-caption-panel-01")
    with pytest.raises(AwsError, match="credentials were not found"):
        actions.refresh(runtime, PASSWORD)
    with pytest.raises(AwsError, match="credentials were not found"):
        actions.collect(runtime, PASSWORD)
    assert jobs_db.get_job(runtime.catalog, running.id).status == "InProgress"
    runtime.catalog.update_job(running.id, status="Completed")
    with pytest.raises(AwsError, match="credentials were not found"):
        actions.collect(runtime, PASSWORD)
    assert jobs_db.get_job(runtime.catalog, running.id).collected_at is None


def test_dataset_tab_holds_the_batch_panel(runtime: Runtime) -> None:
    with gr.Blocks() as demo:
        dataset_tab.build(demo, runtime)
    labels = {getattr(block, "label", None) for block in demo.blocks.values()}
    assert {"Claude batch jobs", "S3 bucket", "Prefix (folder)", "Batch service role ARN", "Batch report"} <= labels
    buttons = {getattr(block, "value", None) for block in demo.blocks.values() if isinstance(block, gr.Button)}
    assert {"Submit batch job", "Refresh status", "Collect finished jobs"} <= buttons


def test_panel_says_up_front_what_is_missing_before_submit() -> None:
    text = actions.readiness("", "", credentials=False)
    assert "no AWS credentials" in text and "S3 bucket" in text and "service role" in text
    text = actions.readiness("my-bucket", "arn:aws:iam::123456789012:role/r", credentials=False)
    assert "no AWS credentials" in text and "S3 bucket" not in text
    assert actions.readiness("my-bucket", "arn:aws:iam::1:role/r", credentials=True).startswith("✅ Ready")
