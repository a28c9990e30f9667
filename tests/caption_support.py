"""Helpers for the captioning tests: a small catalog of drawn cars, Claude replies, stubbed AWS clients."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from carmatch.catalog import Catalog
from carmatch.config import Settings
from carmatch.images import sha256_bytes
from tests.drawing import BODIES, COLORS, draw_car

REGION = "us-east-1"
MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
ROLE_ARN = "arn:aws:iam::123456789012:role/carmatch-batch"


def caption_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings of an isolated home; captioning options overridable."""
    base = Settings(home=tmp_path / "home", caption_model=MODEL, aws_region=REGION, caption_concurrency=1)
    return base.with_overrides(**overrides) if overrides else base


def add_cars(catalog: Catalog, folder: Path, count: int, size: tuple[int, int] = (96, 64)) -> list[str]:
    """Draw ``count`` distinct cars into ``folder`` and add them to the catalog; returns their ids in order."""
    colors, ids = list(COLORS), []
    for n in range(count):
        path = folder / f"car{n:03d}.png"
        folder.mkdir(parents=True, exist_ok=True)
        draw_car(colors[n % len(colors)], BODIES[n % len(BODIES)], size=size, seed=n).save(path)
        image_id = sha256_bytes(path.read_bytes())
        catalog.add_image(image_id, str(path), size[0], size[1], "PNG", path.stat().st_size)
        ids.append(image_id)
    return ids


def reply_json(color: str = "red", body: str = "sedan", **attribute_changes: Any) -> str:
    """A well-formed Claude reply."""
    attributes: dict[str, Any] = {
        "color": color,
        "body_type": body,
        "make": "Toyota",
        "model": "Corolla",
        "viewpoint": "front-left",
        "distinctive_features": ["roof rack"],
        "confidence": 0.7,
    }
    attributes.update(attribute_changes)
    return json.dumps(
        {"caption": f"A {color} {body} with a roof rack, seen from the front left.", "attributes": attributes}
    )


def converse_response(text: str, stop: str = "end_turn") -> dict[str, Any]:
    """A Bedrock Runtime ``converse`` response carrying ``text``."""
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": stop,
        "usage": {"inputTokens": 1700, "outputTokens": 150, "totalTokens": 1850},
        "metrics": {"latencyMs": 900},
    }


def messages_output(text: str, stop: str = "end_turn") -> dict[str, Any]:
    """An Anthropic Messages response body as batch output's ``modelOutput``."""
    return {
        "id": "msg_bdrk_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-20250514",
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 1700, "output_tokens": 150},
    }


def stubbed(service: str) -> tuple[Any, Stubber]:
    """A real boto3 client for ``service`` with a Stubber activated on it (no network, fake keys)."""
    client = boto3.client(service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    stubber = Stubber(client)
    stubber.activate()
    return client, stubber


def throttling(stubber: Stubber, operation: str, code: str = "ThrottlingException", status: int = 429) -> None:
    """Queue one AWS error response for ``operation``."""
    stubber.add_client_error(
        operation, service_error_code=code, service_message="Too many requests", http_status_code=status
    )


def create_job_params() -> dict[str, Any]:
    """The create_model_invocation_job request carmatch sends (names and URIs vary per job)."""
    return {
        "jobName": ANY,
        "roleArn": ROLE_ARN,
        "clientRequestToken": ANY,
        "modelId": MODEL,
        "inputDataConfig": {"s3InputDataConfig": {"s3InputFormat": "JSONL", "s3Uri": ANY}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": ANY}},
        "modelInvocationType": "Converse",
        "timeoutDurationInHours": 72,
    }


def clear_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS credentials anywhere boto3 looks (environment, files, container, instance metadata)."""
    for var in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
