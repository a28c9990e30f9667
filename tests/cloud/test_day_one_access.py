"""Day one on a fresh account: automatic model access, its three prerequisites, and the region's partition."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from carmatch.aws import MARKETPLACE_ACTIONS, explain_aws_error, service_regions
from carmatch.cloud import aws_check_models as models
from carmatch.cloud.check_lines import OK, PROBLEM, WARNING
from carmatch.cloud.sagemaker_quota import check_training_quota, require_training_quota
from carmatch.errors import AwsError

ACCOUNT = "123456789012"


def client(service: str, region: str = "us-east-1") -> Any:
    return boto3.client(service, region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.mark.parametrize(
    "message,words",
    [
        (
            "Model access is denied due to IAM user or service role is not authorized to perform the required AWS "
            "Marketplace actions (aws-marketplace:ViewSubscriptions, aws-marketplace:Subscribe) to enable access to "
            "this model.",
            "aws-marketplace:Unsubscribe",
        ),
        ("Model use case details have not been submitted for this account.", "use-case (first-use) form"),
        (
            "Model access is denied due to INVALID_PAYMENT_INSTRUMENT: A valid payment instrument must be provided.",
            "payment method",
        ),
    ],
)
def test_bedrocks_access_denied_message_names_the_missing_step(message: str, words: str) -> None:
    exc = ClientError({"Error": {"Code": "AccessDeniedException", "Message": message}}, "Converse")
    text = str(explain_aws_error(exc, "caption"))
    assert words in text and "model access is not set up" in text


def test_a_plain_access_denied_points_to_aws_check() -> None:
    exc = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "Converse")
    assert "aws check" in str(explain_aws_error(exc, "caption"))


def test_a_missing_use_case_form_is_a_problem() -> None:
    bedrock = client("bedrock")
    with Stubber(bedrock) as stub:
        stub.add_client_error("get_use_case_for_model_access", "ResourceNotFoundException", "none", 404)
        line = models.use_case_line(bedrock)
    assert line.status == PROBLEM and "first-use" in line.fix


def test_marketplace_actions_are_simulated_for_the_role_behind_an_assumed_role_session() -> None:
    iam = client("iam")
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/ana"
    role = f"arn:aws:iam::{ACCOUNT}:role/dev"
    results = [{"EvalActionName": a, "EvalDecision": "implicitDeny"} for a in MARKETPLACE_ACTIONS]
    with Stubber(iam) as stub:
        stub.add_response(
            "simulate_principal_policy",
            {"EvaluationResults": results},
            {"PolicySourceArn": role, "ActionNames": list(MARKETPLACE_ACTIONS)},
        )
        stub.add_client_error("simulate_principal_policy", "AccessDenied", "no", 403)
        denied = models.check_marketplace_permissions(iam, session)
        unknown = models.check_marketplace_permissions(iam, session)
    assert denied.status == PROBLEM and "aws-marketplace:Subscribe" in denied.detail
    assert unknown.status == WARNING and "iam:SimulatePrincipalPolicy" in unknown.fix


def test_a_model_without_batch_quotas_here_is_a_warning() -> None:
    quotas = client("service-quotas")
    other = {"QuotaName": "Records per batch inference job for Claude Haiku 4.5", "QuotaCode": "L-2", "Value": 1.0}
    with Stubber(quotas) as stub:
        stub.add_response("list_service_quotas", {"Quotas": [other]}, {"ServiceCode": "bedrock"})
        line = models.check_batch_support(quotas, "Claude Sonnet 4.6", "sa-east-1")
    assert line.status == WARNING and "caption live" in line.fix


def test_a_legacy_default_is_replaced_by_the_newest_active_sonnet_bedrock_lists() -> None:
    bedrock = client("bedrock")
    summaries = [
        {"modelArn": "arn:aws:bedrock:us-east-1::foundation-model/" + m, "modelId": m, "modelLifecycle": {"status": s}}
        for m, s in [("anthropic.claude-sonnet-4-6", "LEGACY"), ("anthropic.claude-sonnet-5", "ACTIVE")]
    ]
    details = {"modelArn": "x", "modelId": "anthropic.claude-sonnet-4-6", "modelLifecycle": {"status": "LEGACY"}}
    with Stubber(bedrock) as stub:
        stub.add_response("list_foundation_models", {"modelSummaries": summaries}, {"byProvider": "Anthropic"})
        line = models.lifecycle_line(bedrock, details, "us.anthropic.claude-sonnet-4-6", "us-east-1")
    assert line.status == WARNING and line.fix == "Set CARMATCH_CAPTION_MODEL=us.anthropic.claude-sonnet-5."


def test_govcloud_regions_are_read_from_their_own_partition() -> None:
    assert "us-gov-west-1" in service_regions("bedrock", "aws-us-gov")
    assert models.check_region("us-gov-west-1", service_regions("bedrock", "aws-us-gov")).status == OK
    assert "global." not in models.check_region("us-gov-west-1", ["us-gov-west-1"]).detail


def quota(value: float) -> dict[str, Any]:
    return {"QuotaName": "ml.g5.xlarge for training job usage", "QuotaCode": "L-G5X", "Value": value}


def test_a_zero_training_quota_is_refused_naming_the_quota_and_the_request_command() -> None:
    quotas = client("service-quotas")
    with Stubber(quotas) as stub:
        stub.add_response("list_service_quotas", {"Quotas": [quota(0.0)]}, {"ServiceCode": "sagemaker"})
        with pytest.raises(AwsError, match="ml.g5.xlarge for training job usage.*quota-code L-G5X"):
            require_training_quota(quotas, "ml.g5.xlarge")
        stub.add_response("list_service_quotas", {"Quotas": [quota(2.0)]}, {"ServiceCode": "sagemaker"})
        assert check_training_quota(quotas, "ml.g5.xlarge").status == OK
