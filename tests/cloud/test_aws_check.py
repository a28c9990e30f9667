"""``aws check``: each fact about the account read with real clients under botocore's Stubber."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from botocore.stub import Stubber

from admin.cli import main
from carmatch.aws import MARKETPLACE_ACTIONS
from carmatch.cloud import aws_check
from carmatch.cloud.aws_check import OK, PROBLEM, WARNING, check_bucket, check_role, has_problems, run_checks
from carmatch.config import load_settings

ACCOUNT = "123456789012"
SONNET = "anthropic.claude-sonnet-4-6"
OLD_SONNET = "anthropic.claude-sonnet-4-5-20250929-v1:0"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/carmatch-batch"
BEDROCK_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "bedrock.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def encoded(policy: dict[str, Any]) -> str:
    """A policy as IAM returns it: URL-encoded JSON."""
    return quote(json.dumps(policy))


def client(service: str, region: str = "eu-west-1") -> Any:
    """A real boto3 client with fake keys: Stubber answers it, nothing reaches AWS."""
    return boto3.client(service, region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing")


def batch_quota(name: str = "Claude Sonnet 4.6") -> dict[str, Any]:
    return {"QuotaName": f"Records per batch inference job for {name}", "QuotaCode": "L-1", "Value": 50000.0}


def allowed(iam: Stubber, source: str, actions: tuple[str, ...], decision: str = "allowed") -> None:
    results = [{"EvalActionName": a, "EvalDecision": decision} for a in actions]
    iam.add_response(
        "simulate_principal_policy",
        {"EvaluationResults": results},
        {"PolicySourceArn": source, "ActionNames": list(actions)},
    )


def model_details(model: str, status: str = "ACTIVE") -> dict[str, Any]:
    lifecycle: dict[str, Any] = {"status": status}
    if status == "LEGACY":
        lifecycle["endOfLifeTime"] = datetime(2026, 12, 1, tzinfo=timezone.utc)
    return {
        "modelDetails": {
            "modelArn": f"arn:aws:bedrock:eu-west-1::foundation-model/{model}",
            "modelId": model,
            "modelName": "Claude Sonnet 4.6",
            "inferenceTypesSupported": ["INFERENCE_PROFILE"],
            "modelLifecycle": lifecycle,
        }
    }


def profile(model: str, regions: list[str]) -> dict[str, Any]:
    return {
        "inferenceProfileName": "EU Claude",
        "inferenceProfileArn": f"arn:aws:bedrock:eu-west-1:{ACCOUNT}:inference-profile/{model}",
        "inferenceProfileId": model,
        "status": "ACTIVE",
        "type": "SYSTEM_DEFINED",
        "models": [{"modelArn": f"arn:aws:bedrock:{r}::foundation-model/{model.partition('.')[2]}"} for r in regions],
    }


AVAILABLE = {
    "modelId": SONNET,
    "agreementAvailability": {"status": "AVAILABLE"},
    "authorizationStatus": "AUTHORIZED",
    "entitlementAvailability": "AVAILABLE",
    "regionAvailability": "AVAILABLE",
}


class Clients:
    """Stubbed clients by service, made on first use like the real factory."""

    def __init__(self) -> None:
        self.clients: dict[str, Any] = {}
        self.stubs: dict[str, Stubber] = {}

    def __call__(self, service: str) -> Any:
        return self.clients[service]

    def stub(self, service: str) -> Stubber:
        if service not in self.stubs:
            self.clients[service] = client(service)
            self.stubs[service] = Stubber(self.clients[service])
            self.stubs[service].activate()
        return self.stubs[service]

    def verify(self) -> None:
        for stub in self.stubs.values():
            stub.assert_no_pending_responses()


def identity(clients: Clients) -> None:
    who = {"UserId": "AIDA", "Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/ana"}
    clients.stub("sts").add_response("get_caller_identity", who, {})


def test_a_working_account_is_all_ok_and_names_who_and_where() -> None:
    clients = Clients()
    identity(clients)
    model = f"eu.{SONNET}"
    bedrock = clients.stub("bedrock")
    bedrock.add_response(
        "get_inference_profile", profile(model, ["eu-west-1", "eu-central-1"]), {"inferenceProfileIdentifier": model}
    )
    bedrock.add_response("get_foundation_model", model_details(SONNET), {"modelIdentifier": SONNET})
    quotas = clients.stub("service-quotas")
    quotas.add_response("list_service_quotas", {"Quotas": [batch_quota()]}, {"ServiceCode": "bedrock"})
    bedrock.add_response("get_foundation_model_availability", AVAILABLE, {"modelId": SONNET})
    bedrock.add_response("get_use_case_for_model_access", {"formData": b"{}"}, {})
    allowed(clients.stub("iam"), f"arn:aws:iam::{ACCOUNT}:user/ana", MARKETPLACE_ACTIONS)
    clients.stub("s3").add_response("head_bucket", {"BucketRegion": "eu-west-1"}, {"Bucket": "my-batch"})
    role = {
        "Role": {
            "Path": "/",
            "RoleName": "carmatch-batch",
            "RoleId": "AROA1234567890123456",
            "Arn": ROLE_ARN,
            "CreateDate": datetime(2025, 1, 1, tzinfo=timezone.utc),
            "AssumeRolePolicyDocument": encoded(BEDROCK_TRUST),
        }
    }
    clients.stub("iam").add_response("get_role", role, {"RoleName": "carmatch-batch"})
    env = {"AWS_REGION": "eu-west-1", "CARMATCH_BATCH_BUCKET": "my-batch", "CARMATCH_BATCH_ROLE_ARN": ROLE_ARN}
    lines = run_checks(load_settings(env), clients, ["eu-west-1", "us-east-1"])
    clients.verify()
    assert [line.status for line in lines] == [OK] * 10 + [WARNING], [line.text() for line in lines]
    assert "Titan fine-tuning is not offered in eu-west-1" in lines[-1].detail  # us-east-1 / us-west-2 only
    assert f"user/ana (account {ACCOUNT})" in lines[0].detail
    assert "eu-central-1" in lines[2].detail  # the regions the profile routes to
    assert [line.name for line in lines[3:7]] == [
        "caption model",
        "batch inference",
        "model access",
        "anthropic use case",
    ]
    assert not has_problems(lines)


def test_missing_credentials_stop_the_check_with_how_to_set_them(monkeypatch: pytest.MonkeyPatch) -> None:
    clients = Clients()
    clients.stub("sts").add_client_error("get_caller_identity", "InvalidClientTokenId", "bad token", 403)
    lines = run_checks(load_settings({}), clients, ["us-east-1"])
    assert len(lines) == 1 and lines[0].status == PROBLEM and "AWS_ACCESS_KEY_ID" in lines[0].fix


def test_a_legacy_caption_model_is_a_warning_naming_the_replacement() -> None:
    bedrock = client("bedrock", "us-east-1")
    model = f"us.{OLD_SONNET}"
    with Stubber(bedrock) as stub:
        stub.add_response("get_inference_profile", profile(model, ["us-east-1"]), {"inferenceProfileIdentifier": model})
        stub.add_response("get_foundation_model", model_details(OLD_SONNET, "LEGACY"), {"modelIdentifier": OLD_SONNET})
        stub.add_response(
            "get_foundation_model_availability", {**AVAILABLE, "modelId": OLD_SONNET}, {"modelId": OLD_SONNET}
        )
        stub.add_response("get_use_case_for_model_access", {"formData": b"{}"}, {})
        lines = aws_check.check_caption_model(bedrock, model, "us-east-1")
    legacy = lines[1]
    assert legacy.status == WARNING and "Legacy" in legacy.detail and "2026-12-01" in legacy.detail
    assert legacy.fix == f"Set CARMATCH_CAPTION_MODEL=us.{SONNET}."


def test_a_profile_of_another_geography_is_refused_before_any_call() -> None:
    bedrock = client("bedrock", "sa-east-1")
    with Stubber(bedrock):  # no response queued: any call would fail the test
        lines = aws_check.check_caption_model(bedrock, f"us.{SONNET}", "sa-east-1")
    assert lines[0].status == PROBLEM and lines[0].fix == f"Set CARMATCH_CAPTION_MODEL=global.{SONNET}."


def test_a_model_id_that_does_not_exist_is_a_problem_with_a_working_example() -> None:
    bedrock = client("bedrock", "us-east-1")
    with Stubber(bedrock) as stub:
        stub.add_client_error("get_foundation_model", "ResourceNotFoundException", "no such model", 404)
        lines = aws_check.check_caption_model(bedrock, "anthropic.claude-nope-v1:0", "us-east-1")
    assert lines[-1].status == PROBLEM and f"us.{SONNET}" in lines[-1].fix


def test_model_access_denied_by_policy_is_a_problem_and_not_yet_subscribed_a_warning() -> None:
    line = aws_check.access_line({**AVAILABLE, "authorizationStatus": "NOT_AUTHORIZED"}, SONNET)
    assert line.status == PROBLEM and "SCP" in line.fix
    fresh = {
        **AVAILABLE,
        "entitlementAvailability": "NOT_AVAILABLE",
        "agreementAvailability": {"status": "NOT_AVAILABLE"},
    }
    line = aws_check.access_line(fresh, SONNET)
    assert line.status == WARNING and "first call" in line.detail and "payment method" in line.fix


def test_a_region_without_bedrock_is_a_problem() -> None:
    line = aws_check.check_region("xx-nowhere-1", ["us-east-1"])
    assert line.status == PROBLEM and "AWS_REGION" in line.fix


@pytest.mark.parametrize(
    "answer,status,words",
    [
        ({"error": "404"}, PROBLEM, "cannot be reached (404)"),
        ({"error": "403"}, PROBLEM, "cannot be reached (403)"),
        ({"BucketRegion": "us-west-2"}, PROBLEM, "is in us-west-2"),
    ],
)
def test_a_bucket_that_is_missing_forbidden_or_elsewhere_is_a_problem(answer: dict, status: str, words: str) -> None:
    s3 = client("s3")
    with Stubber(s3) as stub:
        if "error" in answer:
            stub.add_client_error("head_bucket", answer["error"], "", int(answer["error"]))
        else:
            stub.add_response("head_bucket", answer, {"Bucket": "my-batch"})
        line = check_bucket(s3, "my-batch", "eu-west-1")
    assert line.status == status and words in line.detail


def test_a_misnamed_bucket_is_refused_before_any_call() -> None:
    line = check_bucket(client("s3"), "My_Bucket", "eu-west-1")
    assert line.status == PROBLEM and "CARMATCH_BATCH_BUCKET" in line.fix


def test_a_role_that_does_not_trust_bedrock_is_a_problem_and_an_unreadable_one_a_warning() -> None:
    iam = client("iam")
    trust = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}}]}
    role = {
        "Role": {
            "Path": "/",
            "RoleName": "carmatch-batch",
            "RoleId": "AROA1234567890123456",
            "Arn": ROLE_ARN,
            "CreateDate": datetime(2025, 1, 1, tzinfo=timezone.utc),
            "AssumeRolePolicyDocument": encoded(trust),
        }
    }
    with Stubber(iam) as stub:
        stub.add_response("get_role", role, {"RoleName": "carmatch-batch"})
        stub.add_client_error("get_role", "AccessDenied", "no", 403)
        stub.add_client_error("get_role", "NoSuchEntity", "no", 404)
        assert check_role(iam, ROLE_ARN).status == PROBLEM
        assert check_role(iam, ROLE_ARN).status == WARNING
        assert "does not exist" in check_role(iam, ROLE_ARN).detail
    assert check_role(iam, "carmatch-batch").status == PROBLEM  # not an ARN: refused without a call


def test_a_titan_custom_model_needs_provisioned_throughput_and_a_provisioned_one_must_be_in_service() -> None:
    bedrock = client("bedrock", "us-east-1")
    custom = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:custom-model/amazon.titan-embed-image-v1:0/abcdefghijkl"
    assert "titan provision" in aws_check.check_titan_model(bedrock, f"bedrock/{custom}").fix
    provisioned = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:provisioned-model/abcdefghijkl"
    answer = {
        "modelUnits": 1,
        "desiredModelUnits": 1,
        "provisionedModelName": "carmatch",
        "provisionedModelArn": provisioned,
        "modelArn": custom,
        "desiredModelArn": custom,
        "foundationModelArn": custom,
        "status": "Creating",
        "creationTime": datetime(2026, 1, 1, tzinfo=timezone.utc),
        "lastModifiedTime": datetime(2026, 1, 1, tzinfo=timezone.utc),
    }
    with Stubber(bedrock) as stub:
        stub.add_response("get_provisioned_model_throughput", answer, {"provisionedModelId": provisioned})
        line = aws_check.check_titan_model(bedrock, f"bedrock/{provisioned}")
    assert line.status == PROBLEM and "Creating" in line.detail


def test_the_cli_prints_one_line_per_fact_and_fails_on_a_problem(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CARMATCH_HOME", str(tmp_path))
    problem = [aws_check.CheckLine("credentials", PROBLEM, "not usable.", "Set them.")]
    monkeypatch.setattr("admin.aws_cmds.check_account", lambda settings: problem)
    assert main(["aws", "check"]) == 1
    assert capsys.readouterr().out.strip() == "PROBLEM credentials: not usable. Fix: Set them."


def test_fine_tuning_regions_come_from_the_local_tables() -> None:
    assert aws_check.check_fine_tuning("us-west-2").status == OK
    line = aws_check.check_fine_tuning("xx-nowhere-1")
    assert line.status == WARNING and "--image-uri" in line.fix
