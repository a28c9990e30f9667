"""Retries are botocore's: a client from make_client retries throttling and 5xx itself, and never access denied.

Stubber answers before botocore's retry loop, so these tests answer at the HTTP layer instead
(botocore's ``before-send`` event): the request is still built, validated and signed by the real
client, and the real parser and retry handler read the answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from carmatch.aws import CALL_ATTEMPTS, make_client

OK_BODY = {
    "output": {"message": {"role": "assistant", "content": [{"text": "a red van"}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 10, "outputTokens": 3, "totalTokens": 13},
    "metrics": {"latencyMs": 5},
}


class _Raw:
    """The body of an HTTP answer, as urllib3 hands it to botocore."""

    def __init__(self, body: bytes):
        self.body = body

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        yield self.body


def answer(status: int, error: str = "") -> AWSResponse:
    """An HTTP answer from Bedrock Runtime: an error type header and message, or a converse reply."""
    headers = {"Content-Type": "application/json"}
    if error:
        headers["x-amzn-ErrorType"] = error
        body = json.dumps({"message": f"{error} for the test"}).encode()
    else:
        body = json.dumps(OK_BODY).encode()
    return AWSResponse("https://bedrock-runtime.us-east-1.amazonaws.com", status, headers, _Raw(body))


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's pauses between tries, recorded instead of slept."""
    paused: list[float] = []
    monkeypatch.setattr("botocore.endpoint.time.sleep", paused.append)
    # adaptive mode also waits on its token bucket once throttled (client-side rate limiting): not here
    monkeypatch.setattr("botocore.retries.bucket.TokenBucket._sleep_amount", lambda self, amount: 0)
    return paused


def client_answering(answers: list[AWSResponse], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[int]]:
    """A make_client client whose HTTP answers come from ``answers`` in turn; also the list of sends."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr("boto3.DEFAULT_SESSION", None)  # keys cached there would leak into later tests
    client = make_client(
        "bedrock-runtime", "us-east-1", CALL_ATTEMPTS, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    sent: list[int] = []

    def send(request: Any, **kwargs: Any) -> AWSResponse:
        sent.append(1)
        return answers[len(sent) - 1]

    client.meta.events.register("before-send.bedrock-runtime.Converse", send)
    return client, sent


def converse(client: Any) -> dict[str, Any]:
    return client.converse(modelId="model", messages=[{"role": "user", "content": [{"text": "hi"}]}])


def test_throttling_and_5xx_are_retried_by_botocore_with_pauses(
    monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    answers = [answer(429, "ThrottlingException"), answer(503, "ServiceUnavailableException"), answer(200)]
    client, sent = client_answering(answers, monkeypatch)
    assert converse(client)["output"]["message"]["content"][0]["text"] == "a red van"
    assert len(sent) == 3 and len(sleeps) >= 2


def test_access_denied_is_never_retried(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    client, sent = client_answering([answer(403, "AccessDeniedException")], monkeypatch)
    with pytest.raises(ClientError, match="AccessDeniedException"):
        converse(client)
    assert len(sent) == 1


def test_botocore_gives_up_after_the_configured_attempts(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    client, sent = client_answering([answer(429, "ThrottlingException")] * (CALL_ATTEMPTS + 1), monkeypatch)
    with pytest.raises(ClientError, match="ThrottlingException"):
        converse(client)
    assert len(sent) == CALL_ATTEMPTS


def test_the_app_and_interactive_commands_get_standard_retries_and_bulk_work_adaptive() -> None:
    """AWS recommends adaptive (client-side rate limiting) only for a single-tenant bulk job."""
    shared = make_client("bedrock", "us-east-1")
    bulk = make_client("bedrock-runtime", "us-east-1", CALL_ATTEMPTS, bulk=True)
    assert shared.meta.config.retries["mode"] == "standard"
    assert bulk.meta.config.retries == {"total_max_attempts": CALL_ATTEMPTS, "mode": "adaptive"}
