"""The IAM policies on the AWS set-up page are the ones carmatch needs: valid JSON, naming every AWS call."""

from __future__ import annotations

import json
import re
from pathlib import Path

import botocore.session
from botocore import xform_name

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "docs" / "aws-setup.md").read_text(encoding="utf-8")
SERVICES = {
    "bedrock": "bedrock",
    "bedrock-runtime": "bedrock",
    "s3": "s3",
    "sagemaker": "sagemaker",
    "iam": "iam",
    "pricing": "pricing",
}
# calls whose IAM action is not "<prefix>:<OperationName>"
SPECIAL = {
    "converse": "bedrock:InvokeModel",
    "invoke_model": "bedrock:InvokeModel",
    "list_objects_v2": "s3:ListBucket",
    "head_bucket": "s3:ListBucket",
    "head_object": "s3:GetObject",
    "upload_file": "s3:PutObject",  # boto3's managed transfer: PutObject or the multipart calls
    "download_file": "s3:GetObject",
}
NO_PERMISSION = {"get_caller_identity"}  # sts: allowed to every identity
CLIENTS = r"(?:bedrock|s3|sm|sts|iam|pricing|client|s3_client|self\.client)"  # what carmatch names its clients


def json_blocks(text: str) -> list[str]:
    return re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL)


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end]


def policy_actions(policy: dict) -> set[str]:
    actions: set[str] = set()
    for statement in policy["Statement"]:
        found = statement.get("Action", [])
        actions.update([found] if isinstance(found, str) else found)
    return actions


def actions_the_code_calls() -> set[str]:
    """Every AWS API the library and CLI call on a client, as the IAM action that authorises it."""
    source = "\n".join(p.read_text(encoding="utf-8") for d in ("carmatch", "admin") for p in (ROOT / d).rglob("*.py"))
    names = set(re.findall(rf"\b{CLIENTS}\.(\w+)\(", source)) | set(re.findall(r"get_paginator\(\"(\w+)\"\)", source))
    session = botocore.session.get_session()
    called = {SPECIAL[name] for name in ("upload_file", "download_file") if name in names}
    for service, prefix in SERVICES.items():
        for operation in session.get_service_model(service).operation_names:
            name = xform_name(operation)
            if name in names and name not in NO_PERMISSION:
                called.add(SPECIAL.get(name, f"{prefix}:{operation}"))
    return called


def test_every_json_block_in_the_readme_parses() -> None:
    blocks = json_blocks(README)
    assert len(blocks) >= 5
    for block in blocks:
        json.loads(block)


def test_the_identity_policy_names_every_action_carmatch_calls() -> None:
    (policy,) = [json.loads(b) for b in json_blocks(section("IAM permissions for the identity that runs carmatch"))]
    called = actions_the_code_calls()
    assert {"bedrock:InvokeModel", "bedrock:CreateModelInvocationJob", "s3:PutObject", "iam:GetRole"} <= called
    assert "pricing:GetProducts" in called  # titan provision reads the provisioned-throughput rate
    missing = called - policy_actions(policy)
    assert not missing, f"the AWS set-up page's identity policy lacks {sorted(missing)}"


def test_the_batch_role_may_invoke_the_profile_and_its_models_in_every_region() -> None:
    trust, permissions = [json.loads(b) for b in json_blocks(section("The service role for batch jobs"))]
    assert "model-invocation-job" in json.dumps(trust)
    invoke = next(s for s in permissions["Statement"] if "bedrock:InvokeModel" in s["Action"])
    resources = " ".join(invoke["Resource"])
    assert (
        ":inference-profile/us.anthropic." in resources
        and "arn:aws:bedrock:*::foundation-model/anthropic." in resources
    )


def test_the_titan_customization_role_has_its_own_trust_policy() -> None:
    trust, permissions = [json.loads(b) for b in json_blocks(section("The service role for Titan fine-tuning"))]
    principal = trust["Statement"][0]["Principal"]["Service"]
    assert principal == "bedrock.amazonaws.com" and "model-customization-job/*" in json.dumps(trust)
    assert {"s3:GetObject", "s3:PutObject"} <= policy_actions(permissions)
