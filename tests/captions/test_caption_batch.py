"""Batch captioning: JSONL records, splitting, S3 upload, job creation, status, collecting, waiting."""

from __future__ import annotations

import base64
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from PIL import Image

from carmatch.captions import batch_jobs as jobs_db
from carmatch.captions.batch_collect import (
    BatchWaitTimeout,
    collect_job,
    refresh_jobs,
    reply_from_output,
    wait_for_jobs,
)
from carmatch.captions.batch_submit import (
    JOB_NAME_PATTERN,
    BatchLimits,
    BatchTooSmallError,
    check_job_name,
    make_job_name,
    plan_jobs,
    submit_batch,
)
from carmatch.captions.prompt import PROMPT_VERSION, SYSTEM_PROMPT, USER_PROMPT, CaptionReplyError
from carmatch.captions.select import select_images
from carmatch.catalog import Catalog
from carmatch.errors import AwsError, InvalidInputError
from tests.caption_support import (
    MODEL,
    ROLE_ARN,
    add_cars,
    caption_settings,
    converse_response,
    create_job_params,
    messages_output,
    reply_json,
    stubbed,
)

BUCKET = "carmatch-test"
ACCOUNT_ARN = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/"
SMALL = dict(batch_min_records=2, batch_max_records_per_job=3, batch_max_records_per_file=2)


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog(tmp_path / "home" / "carmatch.db")
    yield cat
    cat.close()


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A moto S3 with an empty bucket (every request is checked by moto's S3 model)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def job_status_response(job: jobs_db.BatchJob, status: str, message: str = "", processed: int = 0) -> dict[str, Any]:
    return {
        "jobArn": job.arn,
        "jobName": job.id,
        "modelId": MODEL,
        "roleArn": ROLE_ARN,
        "status": status,
        "message": message,
        "submitTime": datetime(2025, 1, 1, tzinfo=timezone.utc),
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": job.input_uri}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": job.output_uri}},
        "modelInvocationType": "InvokeModel",
        "totalRecordCount": job.record_count,
        "processedRecordCount": processed,
        "successRecordCount": processed,
        "errorRecordCount": 0,
    }


def recorded_job(
    catalog: Catalog,
    image_ids: list[str],
    name: str = "carmatch-caption-test-01",
    status: str = "Completed",
    overwrite_human: bool = False,
) -> jobs_db.BatchJob:
    """A job as submit_batch records it, without uploading anything."""
    base = f"batches/{name}"
    records = [(f"r{n:010d}", image_id) for n, image_id in enumerate(image_ids)]
    params = {"model": MODEL, "prompt_version": PROMPT_VERSION, "overwrite_human": overwrite_human}
    jobs_db.insert_job(catalog, name, f"s3://{BUCKET}/{base}/input/", f"s3://{BUCKET}/{base}/output/", params, records)
    catalog.update_job(name, status=status, arn=ACCOUNT_ARN + "abcdef123456")
    return jobs_db.get_job(catalog, name)


def put_output(s3: Any, job: jobs_db.BatchJob, lines: list[dict[str, Any] | str], part: str = "part-0001") -> None:
    bucket, prefix = job.output_uri[5:].split("/", 1)
    body = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    s3.put_object(Bucket=bucket, Key=f"{prefix}{job.bedrock_job_id}/{part}.jsonl.out", Body=body.encode())
    manifest = {"totalRecordCount": len(lines), "processedRecordCount": len(lines)}
    s3.put_object(
        Bucket=bucket, Key=f"{prefix}{job.bedrock_job_id}/manifest.json.out", Body=json.dumps(manifest).encode()
    )


def ok_line(record_id: str, text: str) -> dict[str, Any]:
    """An answered record of a Converse-type job: modelOutput is the Converse response."""
    return {"recordId": record_id, "modelInput": {"messages": []}, "modelOutput": converse_response(text)}


def test_collect_still_reads_messages_answers_of_jobs_submitted_before_the_converse_type() -> None:
    assert reply_from_output(messages_output("a red van")) == "a red van"
    assert reply_from_output(converse_response("a red van")) == "a red van"
    with pytest.raises(CaptionReplyError, match="max_tokens"):
        reply_from_output(converse_response("a red", "max_tokens"))


# -- planning -------------------------------------------------------------------------------
def test_plan_splits_files_by_record_count_and_bytes() -> None:
    limits = BatchLimits(
        min_records=2, max_records_per_job=100, max_records_per_file=3, max_file_bytes=250, max_job_bytes=10_000
    )
    plan = plan_jobs([100] * 7, limits)
    assert plan == [[[0, 1], [2, 3], [4, 5], [6]]]  # 250 bytes hold two 100-byte records
    limits = BatchLimits(
        min_records=2, max_records_per_job=100, max_records_per_file=3, max_file_bytes=10_000, max_job_bytes=10_000
    )
    assert plan_jobs([100] * 7, limits) == [[[0, 1, 2], [3, 4, 5], [6]]]


def test_plan_splits_jobs_by_records_and_bytes_and_keeps_every_job_above_the_minimum() -> None:
    limits = BatchLimits(
        min_records=3, max_records_per_job=5, max_records_per_file=5, max_file_bytes=10**6, max_job_bytes=10**6
    )
    plan = plan_jobs([10] * 11, limits)
    sizes = [sum(len(f) for f in job) for job in plan]
    assert sizes == [5, 3, 3]  # greedy 5+5+1, then the last job borrows two records
    assert sorted(i for job in plan for f in job for i in f) == list(range(11))
    limits = BatchLimits(
        min_records=1, max_records_per_job=50, max_records_per_file=50, max_file_bytes=300, max_job_bytes=300
    )
    assert [len(job) for job in plan_jobs([100] * 7, limits)] == [1, 1, 1]
    assert [sum(len(f) for f in job) for job in plan_jobs([100] * 7, limits)] == [3, 3, 1]


def test_plan_below_the_minimum_suggests_live_captioning() -> None:
    with pytest.raises(BatchTooSmallError, match="caption live"):
        plan_jobs([10] * 99, BatchLimits())
    assert len(plan_jobs([10] * 100, BatchLimits())) == 1


def test_plan_refuses_a_record_larger_than_a_file() -> None:
    limits = BatchLimits(min_records=1, max_file_bytes=50)
    with pytest.raises(InvalidInputError, match="over the batch file limit"):
        plan_jobs([10, 60], limits)


def test_job_names_match_bedrock_pattern() -> None:
    name = make_job_name(datetime(2025, 3, 4, 5, 6, 7), "ab12", 3)
    assert name == "carmatch-caption-20250304-050607-ab12-03"
    assert JOB_NAME_PATTERN.fullmatch(name) and len(name) <= 63
    for bad in ("-starts-with-dash", "has space", "x" * 64, "under_score"):
        with pytest.raises(InvalidInputError):
            check_job_name(bad)


# -- submit ---------------------------------------------------------------------------------
def test_submit_writes_split_jsonl_uploads_it_and_creates_jobs(tmp_path: Path, catalog: Catalog, s3: Any) -> None:
    settings = caption_settings(tmp_path, **SMALL)
    ids = add_cars(catalog, tmp_path / "cars", 5)
    bedrock, stubber = stubbed("bedrock")
    for job_id in ("aaaaaaaaaaa1", "aaaaaaaaaaa2"):
        stubber.add_response("create_model_invocation_job", {"jobArn": ACCOUNT_ARN + job_id}, create_job_params())
    report = submit_batch(catalog, bedrock, s3, settings, ids, bucket=BUCKET, prefix="/batches/", role_arn=ROLE_ARN)
    stubber.assert_no_pending_responses()
    assert report.records == 5 and report.files == 3 and len(report.jobs) == 2

    jobs = jobs_db.list_jobs(catalog)
    assert [j.status for j in jobs] == ["Submitted", "Submitted"]
    assert [j.record_count for j in jobs] == [3, 2]
    assert [j.bedrock_job_id for j in jobs] == ["aaaaaaaaaaa1", "aaaaaaaaaaa2"]
    seen_images: list[str] = []
    for job in jobs:
        assert JOB_NAME_PATTERN.fullmatch(job.id)
        assert job.input_uri == f"s3://{BUCKET}/batches/{job.id}/input/"
        assert job.output_uri == f"s3://{BUCKET}/batches/{job.id}/output/"
        listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"batches/{job.id}/input/")
        keys = [o["Key"] for o in listing["Contents"]]
        assert keys == job.params["files"]
        lines = [
            json.loads(line)
            for key in keys
            for line in s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().splitlines()
        ]
        assert [len(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read().splitlines()) for k in keys] == (
            [2, 1] if job.record_count == 3 else [2]
        )
        for line in lines:
            assert set(line) == {"recordId", "modelInput"}
            body = line["modelInput"]  # the live converse request, less modelId, image bytes in base64
            assert body["inferenceConfig"] == {"maxTokens": 600, "temperature": 0.0} and "modelId" not in body
            assert body["system"] == [{"text": SYSTEM_PROMPT}]
            image, text = body["messages"][0]["content"]
            assert body["messages"][0]["role"] == "user" and text == {"text": USER_PROMPT}
            assert image["image"]["format"] == "jpeg"
            with Image.open(io.BytesIO(base64.b64decode(image["image"]["source"]["bytes"]))) as img:
                assert img.format == "JPEG"
            image_id, status = jobs_db.record_lookup(catalog, job.id, line["recordId"])
            assert status == "pending"
            seen_images.append(image_id)
    assert sorted(seen_images) == sorted(ids)
    # images waiting in a job are not sent again
    with pytest.raises(BatchTooSmallError):
        submit_batch(catalog, bedrock, s3, settings, ids, bucket=BUCKET, prefix="batches", role_arn=ROLE_ARN)


def test_submit_reports_every_upload_counted_over_all_jobs(tmp_path: Path, catalog: Catalog, s3: Any) -> None:
    settings = caption_settings(tmp_path, **SMALL)
    ids = add_cars(catalog, tmp_path / "cars", 5)
    bedrock, stubber = stubbed("bedrock")
    for job_id in ("aaaaaaaaaaa1", "aaaaaaaaaaa2"):
        stubber.add_response("create_model_invocation_job", {"jobArn": ACCOUNT_ARN + job_id}, create_job_params())
    calls: list[tuple[int, int, str]] = []
    submit_batch(
        catalog,
        bedrock,
        s3,
        settings,
        ids,
        bucket=BUCKET,
        prefix="",
        role_arn=ROLE_ARN,
        progress=lambda done, total, text: calls.append((done, total, text)),
    )
    uploads = [call for call in calls if call[2].startswith("uploading")]
    assert uploads == [(n, 3, f"uploading {n}/3 files") for n in (1, 2, 3)]  # 2 files in job 1, 1 in job 2
    assert calls[-1] == uploads[-1] and calls[0] == (1, 5, "preparing 1/5 images")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert all(key.startswith("carmatch-caption-") for key in keys)  # no prefix: jobs sit at the bucket root


def test_submit_below_the_minimum_uploads_nothing(tmp_path: Path, catalog: Catalog, s3: Any) -> None:
    settings = caption_settings(tmp_path)
    ids = add_cars(catalog, tmp_path / "cars", 3)
    bedrock, stubber = stubbed("bedrock")
    with pytest.raises(BatchTooSmallError, match="only 3 images"):
        submit_batch(catalog, bedrock, s3, settings, ids, bucket=BUCKET, prefix="p", role_arn=ROLE_ARN)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)
    assert jobs_db.list_jobs(catalog) == []


def test_submit_checks_the_role_arn_before_doing_anything(tmp_path: Path, catalog: Catalog, s3: Any) -> None:
    settings = caption_settings(tmp_path, **SMALL)
    ids = add_cars(catalog, tmp_path / "cars", 2)
    bedrock, _ = stubbed("bedrock")
    with pytest.raises(InvalidInputError, match="not an IAM role ARN"):
        submit_batch(catalog, bedrock, s3, settings, ids, bucket=BUCKET, prefix="p", role_arn="my-role")


def test_submit_records_a_refused_job_and_frees_its_images(tmp_path: Path, catalog: Catalog, s3: Any) -> None:
    settings = caption_settings(tmp_path, **SMALL)
    ids = add_cars(catalog, tmp_path / "cars", 2)
    bedrock, stubber = stubbed("bedrock")
    stubber.add_client_error(
        "create_model_invocation_job", "AccessDeniedException", "not authorized to perform iam:PassRole", 403
    )
    with pytest.raises(AwsError, match="iam:PassRole"):
        submit_batch(catalog, bedrock, s3, settings, ids, bucket=BUCKET, prefix="p", role_arn=ROLE_ARN)
    (job,) = jobs_db.list_jobs(catalog)
    assert job.status == "SubmitFailed" and "iam:PassRole" in (job.message or "")
    assert job.records == {"cancelled": 2}
    assert jobs_db.busy_image_ids(catalog) == set()


# -- status ---------------------------------------------------------------------------------
def test_status_values_match_botocore() -> None:
    bedrock, _ = stubbed("bedrock")
    model = bedrock.meta.service_model
    assert set(model.shape_for("ModelInvocationJobStatus").enum) == set(jobs_db.ACTIVE_STATUSES) | set(
        jobs_db.TERMINAL_STATUSES
    )
    assert set(jobs_db.COLLECTABLE_STATUSES) < set(jobs_db.TERMINAL_STATUSES)


@pytest.mark.parametrize(
    "status",
    [
        "Submitted",
        "Validating",
        "Scheduled",
        "InProgress",
        "Completed",
        "PartiallyCompleted",
        "Failed",
        "Stopping",
        "Stopped",
        "Expired",
    ],
)
def test_refresh_records_every_bedrock_status(tmp_path: Path, catalog: Catalog, status: str) -> None:
    ids = add_cars(catalog, tmp_path / "cars", 2, size=(32, 24))
    job = recorded_job(catalog, ids, status="Submitted")
    bedrock, stubber = stubbed("bedrock")
    stubber.add_response(
        "get_model_invocation_job", job_status_response(job, status, f"now {status}", 1), {"jobIdentifier": job.arn}
    )
    (refreshed,) = refresh_jobs(catalog, bedrock)
    stubber.assert_no_pending_responses()
    assert refreshed.status == status and refreshed.message == f"now {status}"
    assert refreshed.params["progress"]["processedRecordCount"] == 1
    assert refreshed.is_active == (status in ("Submitted", "Validating", "Scheduled", "InProgress", "Stopping"))
    assert (jobs_db.busy_image_ids(catalog) == set(ids)) == (status not in ("Failed",))
    if not refreshed.is_active:
        refresh_jobs(catalog, bedrock)  # no response is queued: an ended job must not be polled again


# -- collect --------------------------------------------------------------------------------
def test_collect_matches_lines_by_record_id_and_records_failures(tmp_path: Path, catalog: Catalog, s3: Any) -> None:
    ids = add_cars(catalog, tmp_path / "cars", 6, size=(32, 24))
    catalog.set_caption(ids[5], "mine", "human")
    job = recorded_job(catalog, ids, status="PartiallyCompleted")
    put_output(
        s3,
        job,
        [
            ok_line("r0000000003", reply_json("green", "van")),  # out of order
            {"recordId": "r0000000001", "modelInput": {}, "error": {"errorCode": 400, "errorMessage": "bad image"}},
            ok_line("r0000000000", reply_json("red", "sedan")),
            ok_line("r0000000002", "I think this is a red car."),
            ok_line("r0000000005", reply_json("black", "pickup")),
            ok_line("r0000000099", reply_json()),  # not ours
            "{not json",
        ],
    )
    report = collect_job(catalog, s3, job.id)
    assert (report.captioned, report.failed, report.kept_human, report.missing) == (2, 2, 1, 1)
    assert (report.unknown, report.malformed, report.files) == (1, 1, 1)  # manifest.json.out is not read
    assert catalog.get(ids[0]).attributes["color"] == "red" and catalog.get(ids[3]).attributes["body_type"] == "van"
    record = catalog.get(ids[0])
    assert (record.caption_source, record.caption_model, record.prompt_version) == (
        "claude-batch",
        MODEL,
        PROMPT_VERSION,
    )
    assert catalog.get(ids[1]).caption is None and catalog.get(ids[2]).caption is None
    assert catalog.get(ids[5]).caption == "mine"
    error = catalog.caption_failures(ids[1])[0]
    assert "400" in error["error"] and "bad image" in error["error"] and error["job_id"] == job.id
    assert catalog.caption_failures(ids[2])[0]["raw"] == "I think this is a red car."
    counts = jobs_db.get_job(catalog, job.id).records
    assert counts == {"done": 2, "failed": 2, "kept-human": 1, "missing": 1}
    assert set(select_images(catalog)) == {ids[1], ids[2], ids[4]}  # failed and unanswered ones can go again

    versions = {i: catalog.get(i).version for i in ids}
    failures = len(catalog.caption_failures())
    assert collect_job(catalog, s3, job.id).skipped
    again = collect_job(catalog, s3, job.id, force=True)
    assert (again.captioned, again.failed, again.already) == (0, 0, 5)
    assert {i: catalog.get(i).version for i in ids} == versions
    assert len(catalog.caption_failures()) == failures


def test_collect_overwrites_human_captions_only_when_the_job_asked(tmp_path: Path, catalog: Catalog, s3: Any) -> None:
    ids = add_cars(catalog, tmp_path / "cars", 1, size=(32, 24))
    catalog.set_caption(ids[0], "mine", "human")
    job = recorded_job(catalog, ids, overwrite_human=True)
    put_output(s3, job, [ok_line("r0000000000", reply_json("red", "sedan"))])
    assert collect_job(catalog, s3, job.id).captioned == 1
    assert catalog.get(ids[0]).caption_source == "claude-batch"


def test_collect_refuses_a_running_job(tmp_path: Path, catalog: Catalog, s3: Any) -> None:
    ids = add_cars(catalog, tmp_path / "cars", 1, size=(32, 24))
    job = recorded_job(catalog, ids, status="InProgress")
    with pytest.raises(InvalidInputError, match="InProgress"):
        collect_job(catalog, s3, job.id)


def test_collect_treats_refusals_and_truncation_in_model_output_as_failures(
    tmp_path: Path, catalog: Catalog, s3: Any
) -> None:
    ids = add_cars(catalog, tmp_path / "cars", 2, size=(32, 24))
    job = recorded_job(catalog, ids)
    refused = ok_line("r0000000000", "")
    refused["modelOutput"]["stopReason"] = "content_filtered"  # Converse's stop reasons
    cut = ok_line("r0000000001", reply_json()[:40])
    cut["modelOutput"]["stopReason"] = "max_tokens"
    put_output(s3, job, [refused, cut])
    report = collect_job(catalog, s3, job.id)
    assert report.failed == 2 and report.captioned == 0
    assert "declined" in catalog.caption_failures(ids[0])[0]["error"]
    assert "cut off" in catalog.caption_failures(ids[1])[0]["error"]


# -- wait -----------------------------------------------------------------------------------
def test_wait_polls_with_growing_pauses_then_collects(tmp_path: Path, catalog: Catalog, s3: Any) -> None:
    ids = add_cars(catalog, tmp_path / "cars", 2, size=(32, 24))
    job = recorded_job(catalog, ids, status="Submitted")
    bedrock, stubber = stubbed("bedrock")
    for status in ("Validating", "InProgress", "InProgress", "Completed"):
        stubber.add_response("get_model_invocation_job", job_status_response(job, status), {"jobIdentifier": job.arn})
    put_output(s3, job, [ok_line("r0000000001", reply_json("blue")), ok_line("r0000000000", reply_json("red"))])
    sleeps: list[float] = []
    statuses: list[str] = []
    reports = wait_for_jobs(
        catalog, bedrock, s3, sleep=sleeps.append, poll_seconds=10, on_status=lambda js: statuses.append(js[0].status)
    )
    stubber.assert_no_pending_responses()
    assert statuses == ["Validating", "InProgress", "InProgress", "Completed"]
    assert sleeps == [10, 15, 22.5]
    assert [r.captioned for r in reports] == [2]
    assert wait_for_jobs(catalog, bedrock, s3, sleep=sleeps.append) == []  # nothing left to wait for


def test_wait_gives_up_after_the_timeout_without_losing_the_job(tmp_path: Path, catalog: Catalog, s3: Any) -> None:
    ids = add_cars(catalog, tmp_path / "cars", 1, size=(32, 24))
    job = recorded_job(catalog, ids, status="Submitted")
    bedrock, stubber = stubbed("bedrock")
    for _ in range(3):
        stubber.add_response(
            "get_model_invocation_job", job_status_response(job, "InProgress"), {"jobIdentifier": job.arn}
        )
    with pytest.raises(BatchWaitTimeout, match="still running"):
        wait_for_jobs(catalog, bedrock, s3, sleep=lambda s: None, poll_seconds=10, timeout_seconds=20)
    assert jobs_db.get_job(catalog, job.id).status == "InProgress"
    assert jobs_db.busy_image_ids(catalog) == set(ids)
