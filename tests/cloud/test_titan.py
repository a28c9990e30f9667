"""Titan fine-tuning on Bedrock: hyperparameter ranges, request shapes (Stubber), status polling, CLI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from admin.cli import main
from carmatch.cloud import titan_finetune as titan
from carmatch.errors import AwsError, InvalidInputError
from carmatch.runtime import Runtime
from carmatch.training import registry

ROLE = "arn:aws:iam::123456789012:role/carmatch-bedrock"
VAL = "s3://bucket/v.jsonl"
JOB_ARN = "arn:aws:bedrock:us-east-1:123456789012:model-customization-job/amazon.titan-embed-image-v1:0/abc123"


@pytest.fixture
def bedrock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real bedrock client (fake credentials) for Stubber; never reaches AWS."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    yield boto3.client("bedrock", region_name="us-east-1")


def _job(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "jobArn": JOB_ARN,
        "jobName": "carmatch-titan-1",
        "outputModelName": "carmatch-titan-1",
        "roleArn": ROLE,
        "creationTime": datetime(2025, 1, 1, tzinfo=timezone.utc),
        "baseModelArn": "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-image-v1:0",
        "trainingDataConfig": {"s3Uri": "s3://bucket/titan/train.jsonl"},
        "validationDataConfig": {"validators": [{"s3Uri": "s3://bucket/titan/val.jsonl"}]},
        "outputDataConfig": {"s3Uri": "s3://bucket/titan/out/"},
        "status": status,
        **extra,
    }


@pytest.mark.parametrize(
    "values,message",
    [
        ((0, 576, 5e-5), "epochCount 0 must be 1–100"),
        ((101, 576, 5e-5), "epochCount 101"),
        ((10, 128, 5e-5), "batchSize 128 must be 256–9,216"),
        ((10, 10_000, 5e-5), "batchSize 10000"),
        ((10, 576, 1e-9), "learningRate 1e-09"),
        ((10, 576, 2.0), "learningRate 2"),
        ((10, 576, -1e-5), "learningRate -1e-05"),
    ],
)
def test_hyperparameters_outside_bedrock_ranges_are_refused(values: tuple, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        titan.TitanHyperparameters(*values).validate()


def test_hyperparameters_are_sent_as_strings_and_a_huge_learning_rate_warns() -> None:
    default = titan.TitanHyperparameters(10)
    assert default.validate() == []
    assert default.as_api() == {"epochCount": "10", "batchSize": "576", "learningRate": "5e-05"}
    warnings = titan.TitanHyperparameters(10, 576, 0.01).validate()
    assert len(warnings) == 1 and "200× Titan's default" in warnings[0]


def test_finetune_request_shape_and_registration(runtime: Runtime, bedrock: Any) -> None:
    expected = {
        "jobName": "carmatch-titan-1",
        "customModelName": "carmatch-titan-1",
        "roleArn": ROLE,
        "baseModelIdentifier": "amazon.titan-embed-image-v1:0",
        "customizationType": "FINE_TUNING",
        "trainingDataConfig": {"s3Uri": "s3://bucket/titan/train.jsonl"},
        "validationDataConfig": {"validators": [{"s3Uri": "s3://bucket/titan/val.jsonl"}]},
        "outputDataConfig": {"s3Uri": "s3://bucket/titan/titan-output/carmatch-titan-1/"},
        "hyperParameters": {"epochCount": "5", "batchSize": "1024", "learningRate": "0.0001"},
    }
    with Stubber(bedrock) as stub:
        stub.add_response("create_model_customization_job", {"jobArn": JOB_ARN}, expected)
        arn, warnings = titan.start_finetune(
            bedrock,
            runtime.catalog,
            "s3://bucket/titan/train.jsonl",
            ROLE,
            titan.TitanHyperparameters(5, 1024, 1e-4),
            "s3://bucket/titan/val.jsonl",
            job_name="carmatch-titan-1",
            custom_model_name="carmatch-titan-1",
        )
        stub.assert_no_pending_responses()
    assert arn == JOB_ARN and warnings == []
    record = registry.get_model(runtime.catalog, "carmatch-titan-1")
    assert (record.kind, record.status, record.config["jobArn"]) == ("titan", "submitted", JOB_ARN)


def test_status_updates_the_registry(runtime: Runtime, bedrock: Any) -> None:
    registry.register_model(
        runtime.catalog,
        "carmatch-titan-1",
        "titan",
        titan.TITAN_BASE_MODEL,
        "bedrock",
        "submitted",
        config={"jobArn": JOB_ARN},
    )
    with Stubber(bedrock) as stub:
        stub.add_response("get_model_customization_job", _job("InProgress"), {"jobIdentifier": JOB_ARN})
        stub.add_response(
            "get_model_customization_job",
            _job("Completed", outputModelArn="arn:aws:bedrock:us-east-1:123456789012:custom-model/x"),
        )
        assert titan.job_status(bedrock, runtime.catalog)[0]["status"] == "InProgress"
        assert registry.get_model(runtime.catalog, "carmatch-titan-1").status == "running"
        done = titan.job_status(bedrock, runtime.catalog, "carmatch-titan-1")[0]
    assert done["custom_model_arn"].endswith("custom-model/x")
    record = registry.get_model(runtime.catalog, "carmatch-titan-1")
    assert record.status == "ready" and record.metrics["custom_model_arn"].endswith("custom-model/x")


def test_access_denied_is_explained(runtime: Runtime, bedrock: Any) -> None:
    with Stubber(bedrock) as stub:
        stub.add_client_error("create_model_customization_job", "AccessDeniedException", "not authorized")
        with pytest.raises(AwsError, match="access denied"):
            titan.start_finetune(
                bedrock,
                runtime.catalog,
                "s3://bucket/t.jsonl",
                ROLE,
                titan.TitanHyperparameters(3),
                "s3://bucket/v.jsonl",
            )
    assert registry.list_models(runtime.catalog) == []


def test_cli_warns_about_a_high_learning_rate_and_refuses_bad_values(
    runtime: Runtime, bedrock: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("carmatch.aws.make_client", lambda service, region, **kw: bedrock)
    with Stubber(bedrock) as stub:
        stub.add_response("create_model_customization_job", {"jobArn": JOB_ARN})
        code = main(
            [
                "titan",
                "finetune",
                "--train",
                "s3://bucket/t.jsonl",
                "--validation",
                VAL,
                "--role-arn",
                ROLE,
                "--lr",
                "0.01",
            ]
        )
    out = capsys.readouterr()
    assert code == 0 and JOB_ARN in out.out and "200× Titan's default" in out.err
    with Stubber(bedrock):  # no response queued: any AWS call would fail the test
        assert (
            main(
                [
                    "titan",
                    "finetune",
                    "--train",
                    "s3://bucket/t.jsonl",
                    "--validation",
                    VAL,
                    "--role-arn",
                    ROLE,
                    "--batch-size",
                    "64",
                ]
            )
            == 1
        )
    assert "batchSize 64 must be 256" in capsys.readouterr().err


def test_a_region_without_titan_customization_is_refused_before_any_call(runtime: Runtime, bedrock: Any) -> None:
    hp = titan.TitanHyperparameters(3)
    with Stubber(bedrock):  # no response queued: any AWS call would fail the test
        with pytest.raises(InvalidInputError, match="us-east-1 or us-west-2") as caught:
            titan.start_finetune(bedrock, runtime.catalog, "s3://bucket/t.jsonl", ROLE, hp, VAL, region="eu-west-1")
        assert (caught.value.field, caught.value.value) == ("aws_region", "eu-west-1")
    assert registry.list_models(runtime.catalog) == []


def test_no_validation_set_is_sent_unless_asked_and_epochs_may_be_auto(runtime: Runtime, bedrock: Any) -> None:
    sent: list[dict[str, Any]] = []
    bedrock.meta.events.register(
        "provide-client-params.bedrock.CreateModelCustomizationJob", lambda params, **kw: sent.append(params)
    )
    arn = "arn:aws:bedrock:us-east-1:123456789012:model-customization-job/abc"
    with Stubber(bedrock) as stub:
        stub.add_response("create_model_customization_job", {"jobArn": arn})
        hp = titan.TitanHyperparameters("auto")
        titan.start_finetune(bedrock, runtime.catalog, "s3://bucket/t.jsonl", ROLE, hp, None, region="us-east-1")
    assert "validationDataConfig" not in sent[0] and sent[0]["hyperParameters"]["epochCount"] == "Auto"
    with pytest.raises(InvalidInputError, match="or auto"):
        titan.TitanHyperparameters("lots").validate()
