"""`python -m admin caption ...`: wiring, messages and exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.stub import ANY

from admin import caption_cmds
from admin.cli import main
from carmatch.captions import batch_jobs as jobs_db
from carmatch.catalog import Catalog
from tests.caption_support import MODEL, add_cars, clear_aws_credentials, converse_response, reply_json, stubbed


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated carmatch home with no AWS credentials anywhere."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    home = tmp_path / "home"
    monkeypatch.setenv("CARMATCH_HOME", str(home))
    monkeypatch.setenv("CARMATCH_CAPTION_MODEL", MODEL)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    clear_aws_credentials(monkeypatch, tmp_path)
    return home


def with_cars(home: Path, tmp_path: Path, count: int) -> list[str]:
    with Catalog(home / "carmatch.db") as catalog:
        return add_cars(catalog, tmp_path / "cars", count, size=(32, 24))


def fake_aws(monkeypatch: pytest.MonkeyPatch, clients: dict[str, Any]) -> None:
    monkeypatch.setattr(caption_cmds, "require_credentials", lambda: None)
    monkeypatch.setattr(caption_cmds, "make_client", lambda service, region, **_: clients[service])
    monkeypatch.setattr(caption_cmds, "bedrock_runtime_client", lambda settings: clients["bedrock-runtime"])


def test_live_without_credentials_says_how_to_give_them(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with_cars(home, tmp_path, 1)
    assert main(["caption", "live"]) == 1
    err = capsys.readouterr().err
    assert "credentials were not found" in err and "AWS_PROFILE" in err


def test_live_captions_and_prints_a_summary(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = with_cars(home, tmp_path, 2)
    client, stubber = stubbed("bedrock-runtime")
    stubber.add_response(
        "converse",
        converse_response(reply_json("red")),
        {"modelId": MODEL, **dict.fromkeys(("system", "messages", "inferenceConfig"), ANY)},
    )
    fake_aws(monkeypatch, {"bedrock-runtime": client})
    assert main(["caption", "live", "--ids", ids[1][:12]]) == 0
    assert "Captioned 1 of 1" in capsys.readouterr().out
    with Catalog(home / "carmatch.db") as catalog:
        assert catalog.get(ids[1]).caption_source == "claude-live" and catalog.get(ids[0]).caption is None
    assert main(["caption", "live", "--ids", ids[1]]) == 0  # done already: nothing sent
    assert "Nothing to caption" in capsys.readouterr().out


def test_batch_submit_below_minimum_suggests_live(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with_cars(home, tmp_path, 3)
    bedrock, _ = stubbed("bedrock")
    fake_aws(monkeypatch, {"bedrock": bedrock, "s3": stubbed("s3")[0]})
    args = ["caption", "batch", "submit", "--bucket", "my-bucket", "--role-arn", "arn:aws:iam::123456789012:role/r"]
    assert main(args) == 1
    assert ".venv/bin/carmatch caption live" in capsys.readouterr().err


def test_batch_status_lists_ended_jobs_without_calling_aws(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = with_cars(home, tmp_path, 2)
    assert main(["caption", "batch", "status"]) == 0
    assert "No batch captioning jobs yet" in capsys.readouterr().out
    with Catalog(home / "carmatch.db") as catalog:
        jobs_db.insert_job(catalog, "job-1", "s3://b/i/", "s3://b/o/", {}, [("r0", ids[0]), ("r1", ids[1])])
        catalog.update_job("job-1", status="Failed", message="role cannot read the bucket", arn="arn:x/abc")
    assert main(["caption", "batch", "status"]) == 0  # no credentials needed: nothing is running
    out = capsys.readouterr().out
    assert "job-1" in out and "Failed" in out and "role cannot read the bucket" in out and "2 images" in out


def test_batch_submit_takes_bucket_and_role_from_settings_or_says_which_is_missing(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with_cars(home, tmp_path, 3)
    fake_aws(monkeypatch, {"bedrock": stubbed("bedrock")[0], "s3": stubbed("s3")[0]})
    assert main(["caption", "batch", "submit"]) == 1
    assert "Give --bucket (or set CARMATCH_BATCH_BUCKET)" in capsys.readouterr().err
    monkeypatch.setenv("CARMATCH_BATCH_BUCKET", "my-bucket")
    assert main(["caption", "batch", "submit"]) == 1
    assert "Give --role-arn (or set CARMATCH_BATCH_ROLE_ARN)" in capsys.readouterr().err
    monkeypatch.setenv("CARMATCH_BATCH_ROLE_ARN", "arn:aws:iam::123456789012:role/r")
    assert main(["caption", "batch", "submit"]) == 1  # both from settings: on to the real check
    assert ".venv/bin/carmatch caption live" in capsys.readouterr().err


def test_caption_live_retries_throttling_and_stores_the_caption(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI's own client, faked at the HTTP layer: throttled twice, then answered; the caption is stored."""
    import json

    from botocore.awsrequest import AWSResponse

    from carmatch import aws

    (image_id,) = with_cars(home, tmp_path, 1)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr("boto3.DEFAULT_SESSION", None)
    monkeypatch.setattr("botocore.endpoint.time.sleep", lambda seconds: None)  # botocore's pauses, not slept
    monkeypatch.setattr("botocore.retries.bucket.TokenBucket._sleep_amount", lambda self, amount: 0)
    sent: list[str] = []

    class Raw:
        def __init__(self, body: bytes):
            self.body = body

        def stream(self, *args: Any, **kwargs: Any) -> Any:
            yield self.body

    def send(request: Any, **kwargs: Any) -> AWSResponse:
        sent.append(request.url)
        url = "https://bedrock-runtime.us-east-1.amazonaws.com"
        if len(sent) <= 2:
            headers = {"Content-Type": "application/json", "x-amzn-ErrorType": "ThrottlingException"}
            return AWSResponse(url, 429, headers, Raw(b'{"message": "Too many requests"}'))
        body = json.dumps(converse_response(reply_json("blue", "van"))).encode()
        return AWSResponse(url, 200, {"Content-Type": "application/json"}, Raw(body))

    real = aws.make_client

    def with_fake_http(service: str, region: str, *args: Any, **kwargs: Any) -> Any:
        client = real(service, region, *args, **kwargs)
        client.meta.events.register("before-send.bedrock-runtime.Converse", send)
        return client

    monkeypatch.setattr(aws, "make_client", with_fake_http)
    assert main(["caption", "live"]) == 0, capsys.readouterr().err
    assert len(sent) == 3  # two throttled tries, then the answer: no failure stored
    with Catalog(home / "carmatch.db") as catalog:
        record = catalog.get(image_id)
    assert record.attributes.get("color") == "blue" and record.caption
