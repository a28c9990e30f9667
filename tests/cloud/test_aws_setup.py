"""``aws setup``: the CloudFormation template lints clean, deploys in moto's CloudFormation, and fills .env."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
import yaml
from moto import mock_aws

from admin.cli import main
from carmatch.cloud.aws_setup import TEMPLATE_PATH, write_env

REGION = "eu-west-1"
# moto's CloudFormation skips the TLS-only bucket policy (cfn-lint checks it); the rest deploys
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS.+BucketPolicy:UserWarning")


def test_the_template_passes_cfn_lint() -> None:
    from cfnlint.api import lint_all

    matches = [m for m in lint_all(TEMPLATE_PATH.read_text()) if m.rule.id[0] in "EW"]  # the CLI's default levels
    assert not matches, "\n".join(str(m) for m in matches)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setenv("CARMATCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AWS_REGION", REGION)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # its cached test keys must not outlive the test
    with mock_aws():
        yield


def trusted(role: dict[str, Any]) -> set[str]:
    document = role["AssumeRolePolicyDocument"]
    document = json.loads(unquote(document)) if isinstance(document, str) else document
    return {s["Principal"]["Service"] for s in document["Statement"]}


def test_setup_deploys_the_stack_and_writes_its_outputs_into_env_keeping_other_lines(
    aws: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / ".env"
    env.write_text("# mine\nCARMATCH_ADMIN_PASSWORD=secret\nCARMATCH_BATCH_BUCKET=old-bucket\n")
    assert main(["aws", "setup", "--bucket", "my-carmatch", "--env-file", str(env)]) == 0
    lines = env.read_text().splitlines()
    assert lines[:2] == ["# mine", "CARMATCH_ADMIN_PASSWORD=secret"]
    values = dict(line.split("=", 1) for line in lines[1:])
    assert values["CARMATCH_BATCH_BUCKET"] == "my-carmatch" and values["AWS_REGION"] == REGION
    iam = boto3.client("iam", region_name=REGION)
    roles = {
        key: iam.get_role(RoleName=values[key].rsplit("/", 1)[1])["Role"]
        for key in ("CARMATCH_BATCH_ROLE_ARN", "CARMATCH_TITAN_ROLE_ARN", "CARMATCH_SAGEMAKER_ROLE_ARN")
    }
    assert trusted(roles["CARMATCH_BATCH_ROLE_ARN"]) == {"bedrock.amazonaws.com"}
    assert trusted(roles["CARMATCH_TITAN_ROLE_ARN"]) == {"bedrock.amazonaws.com"}
    assert trusted(roles["CARMATCH_SAGEMAKER_ROLE_ARN"]) == {"sagemaker.amazonaws.com"}
    assert "my-carmatch" in [b["Name"] for b in boto3.client("s3", region_name=REGION).list_buckets()["Buckets"]]
    # what moto's CloudFormation does not apply, read from the template itself
    bucket = yaml.safe_load(TEMPLATE_PATH.read_text())["Resources"]["Bucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values()) and len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    resources = boto3.client("cloudformation", region_name=REGION).describe_stack_resources(StackName="carmatch")
    kinds = sorted(str(r.get("ResourceType")) for r in resources["StackResources"])
    assert kinds.count("AWS::IAM::Role") == 3 and "AWS::S3::Bucket" in kinds and "AWS::IAM::ManagedPolicy" in kinds
    assert "aws check" in capsys.readouterr().out
    assert main(["aws", "setup", "--bucket", "my-carmatch", "--env-file", str(env)]) == 0  # again: no change


def test_dry_run_prints_the_plan_and_deploys_nothing(
    aws: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / ".env"
    assert main(["aws", "setup", "--dry-run", "--env-file", str(env)]) == 0
    out = capsys.readouterr().out
    assert "SageMakerRole (AWS::IAM::Role)" in out and "eu.anthropic.claude-sonnet-4-6" in out
    assert not env.exists()
    assert boto3.client("cloudformation", region_name=REGION).list_stacks()["StackSummaries"] == []


def test_write_env_replaces_exported_keys_and_appends_new_ones(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("export AWS_REGION=us-east-1\nOTHER=1")
    write_env(env, {"AWS_REGION": "eu-west-1", "CARMATCH_BATCH_BUCKET": "b"})
    assert env.read_text() == "AWS_REGION=eu-west-1\nOTHER=1\nCARMATCH_BATCH_BUCKET=b\n"


def actions_of(statements: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for statement in statements:
        action = statement["Action"]
        found.update([action] if isinstance(action, str) else action)
    return found


def test_the_stacks_user_policy_allows_what_the_documented_identity_policy_allows() -> None:
    import re

    docs = (TEMPLATE_PATH.parents[2] / "docs" / "aws-setup.md").read_text()
    section = docs.split("## IAM permissions for the identity that runs carmatch", 1)[1].split("\n## ", 1)[0]
    documented = json.loads(re.findall(r"```json\n(.*?)```", section, flags=re.DOTALL)[0])["Statement"]
    template = yaml.safe_load(TEMPLATE_PATH.read_text())["Resources"]
    stack = template["UserPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert actions_of(documented) <= actions_of(stack)
    sagemaker = template["SageMakerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert {"s3:GetObject", "s3:PutObject", "ecr:BatchGetImage", "logs:PutLogEvents"} <= actions_of(sagemaker)
