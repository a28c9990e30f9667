"""The Claude batch panel's "Check AWS" shows aws check's lines, for the bucket and role typed in the boxes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from carmatch.errors import AccessDeniedError
from carmatch.runtime import Runtime
from carmatch.ui import caption_jobs_actions as actions
from tests.caption_support import MODEL, caption_settings

PASSWORD = "s3cret"


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(caption_settings(tmp_path, admin_password=PASSWORD, aws_region="eu-west-1"))
    yield rt
    rt.close()


def stubbed(service: str) -> tuple[Any, Stubber]:
    client = boto3.client(service, region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.activate()
    return client, stub


def test_the_panel_checks_the_typed_bucket_and_says_what_to_fix(runtime: Runtime) -> None:
    sts, sts_stub = stubbed("sts")
    sts_stub.add_response(
        "get_caller_identity", {"UserId": "A", "Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/ana"}
    )
    bedrock, _ = stubbed("bedrock")  # nothing queued: the profile is refused before any Bedrock call
    s3, s3_stub = stubbed("s3")
    s3_stub.add_client_error("head_bucket", "404", "", 404, expected_params={"Bucket": "typed-bucket"})
    clients = {"sts": sts, "bedrock": bedrock, "s3": s3}.__getitem__
    text = actions.aws_check(runtime, PASSWORD, " typed-bucket ", "", clients=clients)
    lines = text.splitlines()
    assert lines[0].startswith("- ✅ **credentials**") and "user/ana" in lines[0]
    model = next(line for line in lines if "**caption model**" in line)  # a us. profile seen from eu-west-1
    assert model.startswith("- ❌") and f"CARMATCH_CAPTION_MODEL=eu.{MODEL.partition('.')[2]}" in model
    assert any("s3://typed-bucket" in line and "*Fix:*" in line for line in lines)
    s3_stub.assert_no_pending_responses()


def test_the_check_is_for_admins_only(runtime: Runtime) -> None:
    with pytest.raises(AccessDeniedError):
        actions.aws_check(runtime, "wrong", "", "", clients=lambda service: None)
