"""Provisioned throughput for a fine-tuned Titan model: the cost is stated first; create and delete via Stubber."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from admin.cli import main
from carmatch.cloud import titan_provision
from carmatch.cloud.titan_finetune import TITAN_BASE_MODEL
from carmatch.errors import InvalidInputError, NotFoundError
from carmatch.runtime import Runtime
from carmatch.training import registry

CUSTOM = "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.titan-embed-image-v1:0/abcdefghijkl"
PROVISIONED = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdefghijkl"


@pytest.fixture
def bedrock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real bedrock client (fake credentials) for Stubber; never reaches AWS."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    yield boto3.client("bedrock", region_name="us-east-1")


def finished_job(runtime: Runtime, status: str = "ready") -> None:
    metrics = {"custom_model_arn": CUSTOM} if status == "ready" else {}
    registry.register_model(
        runtime.catalog,
        "carmatch-titan-1",
        "titan",
        TITAN_BASE_MODEL,
        "bedrock",
        status,
        None,
        {"jobArn": "x"},
        metrics,
    )


def test_the_cost_is_stated_per_hour_day_and_month_before_anything_is_created(runtime: Runtime) -> None:
    finished_job(runtime)
    plan = titan_provision.plan_provision(runtime.catalog, "carmatch-titan-1", 2, "none", 10.0)
    text = plan.statement()
    assert "$20.00/hour" in text and "$480.00/day" in text and "$14,600/month" in text
    assert "titan deprovision carmatch-titan-1" in text


@pytest.mark.parametrize(
    "units,commitment,rate,field",
    [(0, "none", 10.0, "units"), (1, "forever", 10.0, "commitment"), (1, "none", None, "hourly_usd")],
)
def test_bad_provisioning_input_is_refused_by_name(
    runtime: Runtime, units: int, commitment: str, rate: float | None, field: str
) -> None:
    finished_job(runtime)
    with pytest.raises(InvalidInputError) as caught:
        titan_provision.plan_provision(runtime.catalog, "carmatch-titan-1", units, commitment, rate)
    assert caught.value.field == field


def test_a_job_without_a_custom_model_cannot_be_provisioned(runtime: Runtime) -> None:
    finished_job(runtime, status="running")
    with pytest.raises(InvalidInputError, match="titan status"):
        titan_provision.plan_provision(runtime.catalog, "carmatch-titan-1", 1, "none", 10.0)
    with pytest.raises(NotFoundError):
        titan_provision.plan_provision(runtime.catalog, "nope", 1, "none", 10.0)


def test_provision_then_deprovision_records_and_forgets_the_arn(runtime: Runtime, bedrock: Any) -> None:
    finished_job(runtime)
    plan = titan_provision.plan_provision(runtime.catalog, "carmatch-titan-1", 1, "1-month", 10.0)
    create = {
        "modelUnits": 1,
        "provisionedModelName": "carmatch-titan-1-pt",
        "modelId": CUSTOM,
        "clientRequestToken": "carmatch-titan-1-pt",
        "commitmentDuration": "OneMonth",
    }
    with Stubber(bedrock) as stub:
        stub.add_response("create_provisioned_model_throughput", {"provisionedModelArn": PROVISIONED}, create)
        stub.add_response("delete_provisioned_model_throughput", {}, {"provisionedModelId": PROVISIONED})
        assert titan_provision.provision(bedrock, runtime.catalog, plan) == PROVISIONED
        record = registry.get_model(runtime.catalog, "carmatch-titan-1")
        assert record.config[titan_provision.PROVISIONED_KEY] == PROVISIONED and record.config["jobArn"] == "x"
        with pytest.raises(InvalidInputError, match="already has provisioned throughput"):
            titan_provision.plan_provision(runtime.catalog, "carmatch-titan-1", 1, "none", 10.0)
        assert titan_provision.deprovision(bedrock, runtime.catalog, "carmatch-titan-1") == PROVISIONED
        stub.assert_no_pending_responses()
    assert titan_provision.PROVISIONED_KEY not in registry.get_model(runtime.catalog, "carmatch-titan-1").config
    with pytest.raises(NotFoundError, match="nothing to delete"):
        titan_provision.deprovision(bedrock, runtime.catalog, "carmatch-titan-1")


def test_the_cli_prints_the_cost_and_creates_nothing_without_yes(
    runtime: Runtime, bedrock: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    finished_job(runtime)
    monkeypatch.setattr("carmatch.aws.make_client", lambda service, region, **kw: bedrock)
    with Stubber(bedrock):  # no response queued: any AWS call would fail the test
        assert main(["titan", "provision", "carmatch-titan-1", "--hourly-usd", "10"]) == 0
    out = capsys.readouterr().out
    assert "$10.00/hour" in out and "Nothing was created" in out
    assert main(["titan", "provision", "carmatch-titan-1", "--hourly-usd", "0"]) == 1  # no rate: see test_titan_pricing
    assert "--hourly-usd" in capsys.readouterr().err
    with Stubber(bedrock) as stub:
        stub.add_response("create_provisioned_model_throughput", {"provisionedModelArn": PROVISIONED})
        assert main(["titan", "provision", "carmatch-titan-1", "--hourly-usd", "10", "--yes"]) == 0
    assert f"CARMATCH_MODEL=bedrock/{PROVISIONED}" in capsys.readouterr().out
