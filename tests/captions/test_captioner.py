"""Live captioning through Bedrock Runtime ``converse``, checked against botocore's service model."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY
from PIL import Image

from carmatch.aws import CALL_ATTEMPTS
from carmatch.captions.live import (
    CLAUDE_MAX_PIXELS,
    CLAUDE_MAX_SIDE_PX,
    bedrock_runtime_client,
    caption_live,
    caption_selected,
    fit_size,
    prepare_image,
    require_credentials,
)
from carmatch.captions.prompt import PROMPT_VERSION, SYSTEM_PROMPT, USER_PROMPT
from carmatch.captions.select import select_images
from carmatch.catalog import Catalog
from carmatch.errors import AwsError, InvalidInputError, NotFoundError
from tests.caption_support import (
    MODEL,
    add_cars,
    caption_settings,
    clear_aws_credentials,
    converse_response,
    reply_json,
    stubbed,
    throttling,
)


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog(tmp_path / "home" / "carmatch.db")
    yield cat
    cat.close()


def expected_converse(image_bytes: Any = ANY) -> dict[str, Any]:
    return {
        "modelId": MODEL,
        "system": [{"text": SYSTEM_PROMPT}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"image": {"format": "jpeg", "source": {"bytes": image_bytes}}},
                    {"text": USER_PROMPT},
                ],
            }
        ],
        "inferenceConfig": {"maxTokens": 600, "temperature": 0.0},
    }


# -- images ---------------------------------------------------------------------------------
def test_fit_size_respects_claude_long_side_and_megapixels() -> None:
    assert fit_size(800, 600) == (800, 600)
    w, h = fit_size(6000, 4000)
    assert w * h <= CLAUDE_MAX_PIXELS and max(w, h) <= CLAUDE_MAX_SIDE_PX
    assert abs(w / h - 1.5) < 0.01
    w, h = fit_size(10000, 1000)  # a panorama is limited by its long side
    assert w == CLAUDE_MAX_SIDE_PX and h == 156


def test_prepare_image_shrinks_large_photos_to_a_jpeg_within_limits(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.effect_noise((2000, 1500), 80).convert("RGB").save(path)
    settings = caption_settings(tmp_path)
    prepared = prepare_image(path, settings)
    with Image.open(io.BytesIO(prepared.data)) as img:
        assert img.format == "JPEG"
        assert img.size == (prepared.width, prepared.height)
    assert prepared.width * prepared.height <= CLAUDE_MAX_PIXELS and max(prepared.width, prepared.height) <= 1568
    small = prepare_image(path, settings, max_bytes=60_000)  # noise compresses badly: forces lower quality/size
    assert len(small.data) <= 60_000


# -- choosing images ------------------------------------------------------------------------
def test_select_skips_human_and_done_captions_and_honours_only_missing(tmp_path: Path, catalog: Catalog) -> None:
    a, b, c, d = add_cars(catalog, tmp_path / "cars", 4)
    catalog.set_caption(a, "my car", "human")
    catalog.set_caption(b, "old", "claude-live", model=MODEL, prompt_version=PROMPT_VERSION)
    catalog.set_caption(c, "from csv", "imported")
    assert set(select_images(catalog)) == {c, d}
    assert select_images(catalog, only_missing=True) == [d]
    assert set(select_images(catalog, overwrite_human=True)) == {a, c, d}
    assert set(select_images(catalog, redo=True)) == {b, c, d}
    catalog.set_caption(b, "older prompt", "claude-batch", prompt_version="car-caption-v0")
    assert set(select_images(catalog)) == {b, c, d}
    assert set(select_images(catalog, [d[:10], c])) == {c, d}


def test_resolve_ids_accepts_unique_prefixes_only(tmp_path: Path, catalog: Catalog) -> None:
    ids = add_cars(catalog, tmp_path / "cars", 17, size=(32, 24))  # 17 ids: two share a first hex digit
    assert catalog.resolve_ids([ids[1][:8].upper(), ids[1]]) == [ids[1]]
    for bad in ("zzzz", "%", "_"):  # not hex; never a LIKE wildcard
        with pytest.raises(NotFoundError):
            catalog.resolve_ids([bad])
    firsts = [i[0] for i in ids]
    shared = next(c for c in firsts if firsts.count(c) > 1)
    with pytest.raises(InvalidInputError, match="several"):
        catalog.resolve_ids([shared])


# -- live -----------------------------------------------------------------------------------
def test_live_sends_a_valid_converse_request_and_stores_the_caption(tmp_path: Path, catalog: Catalog) -> None:
    settings = caption_settings(tmp_path)
    (image_id,) = add_cars(catalog, tmp_path / "cars", 1)
    image_bytes = prepare_image(catalog.get(image_id).path, settings).data
    client, stubber = stubbed("bedrock-runtime")
    stubber.add_response("converse", converse_response(reply_json("blue", "pickup")), expected_converse(image_bytes))
    seen: list[tuple[int, int]] = []
    report = caption_live(catalog, client, [image_id], settings, progress=lambda d, t, m: seen.append((d, t)))
    stubber.assert_no_pending_responses()
    assert (report.captioned, report.failed, report.requested) == (1, 0, 1)
    record = catalog.get(image_id)
    assert record.caption_source == "claude-live"
    assert record.caption_model == MODEL and record.prompt_version == PROMPT_VERSION
    assert record.attributes["body_type"] == "pickup" and record.attributes["distinctive_features"] == ["roof rack"]
    assert catalog.filter_ids({"color": "blue"}) == {image_id}
    assert seen[-1] == (1, 1)
    assert select_images(catalog) == []  # a re-run skips it


@pytest.mark.parametrize(
    "text, stop, reason",
    [
        ("A red sedan, nice.", "end_turn", "not valid JSON"),
        ('{"caption": "A red sedan"}', "end_turn", "no 'attributes'"),
        ('{"refusal": "no car in this image"}', "end_turn", "declined"),
        ('{"caption": "A red sedan with', "max_tokens", "cut off"),
        ("", "content_filtered", "declined"),
    ],
)
def test_live_stores_bad_replies_as_failures_never_as_captions(
    tmp_path: Path, catalog: Catalog, text: str, stop: str, reason: str
) -> None:
    settings = caption_settings(tmp_path)
    (image_id,) = add_cars(catalog, tmp_path / "cars", 1)
    client, stubber = stubbed("bedrock-runtime")
    stubber.add_response("converse", converse_response(text, stop), expected_converse())
    report = caption_live(catalog, client, [image_id], settings)
    assert (report.captioned, report.failed) == (0, 1)
    assert catalog.get(image_id).caption is None
    (failure,) = catalog.caption_failures(image_id)
    assert reason in failure["error"]
    assert failure["raw"] == text and failure["source"] == "claude-live"
    assert failure["prompt_version"] == PROMPT_VERSION


def test_the_live_client_leaves_throttling_and_5xx_to_botocores_adaptive_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # its cached keys would leak into later tests
    client = bedrock_runtime_client(caption_settings(tmp_path))
    assert client.meta.config.retries == {"total_max_attempts": CALL_ATTEMPTS, "mode": "adaptive"}


def test_live_records_an_image_botocore_gave_up_on_and_goes_on(tmp_path: Path, catalog: Catalog) -> None:
    settings = caption_settings(tmp_path)
    first, second = add_cars(catalog, tmp_path / "cars", 2)
    client, stubber = stubbed("bedrock-runtime")
    throttling(stubber, "converse")  # Stubber answers after botocore's retries: what is left when they ran out
    stubber.add_response("converse", converse_response(reply_json()), expected_converse())
    report = caption_live(catalog, client, [first, second], settings)
    stubber.assert_no_pending_responses()
    assert (report.captioned, report.failed) == (1, 1)
    assert "ThrottlingException" in catalog.caption_failures(first)[0]["error"]
    assert catalog.get(second).caption_source == "claude-live"


def test_live_stops_on_access_denied_and_keeps_what_was_already_captioned(tmp_path: Path, catalog: Catalog) -> None:
    settings = caption_settings(tmp_path)
    ids = add_cars(catalog, tmp_path / "cars", 3)
    client, stubber = stubbed("bedrock-runtime")
    stubber.add_response("converse", converse_response(reply_json()), expected_converse())
    throttling(stubber, "converse", "AccessDeniedException", 403)
    with pytest.raises(AwsError, match="model access"):
        caption_live(catalog, client, ids, settings)
    stubber.assert_no_pending_responses()  # the third image was never sent
    assert catalog.get(ids[0]).caption_source == "claude-live"
    assert catalog.get(ids[1]).caption is None and catalog.get(ids[2]).caption is None
    assert catalog.caption_failures() == []  # an account problem is not the image's failure


def test_live_stops_on_unknown_model_with_region_hint(tmp_path: Path, catalog: Catalog) -> None:
    settings = caption_settings(tmp_path)
    ids = add_cars(catalog, tmp_path / "cars", 1)
    client, stubber = stubbed("bedrock-runtime")
    throttling(stubber, "converse", "ResourceNotFoundException", 404)
    with pytest.raises(AwsError, match="AWS_REGION"):
        caption_live(catalog, client, ids, settings)


def test_live_keeps_human_captions_unless_asked(tmp_path: Path, catalog: Catalog) -> None:
    settings = caption_settings(tmp_path)
    (image_id,) = add_cars(catalog, tmp_path / "cars", 1)
    catalog.set_caption(image_id, "grandpa's truck", "human", author="ann")
    client, stubber = stubbed("bedrock-runtime")
    stubber.add_response("converse", converse_response(reply_json()), expected_converse())
    stubber.add_response("converse", converse_response(reply_json()), expected_converse())
    report = caption_live(catalog, client, [image_id], settings)
    assert report.skipped_human == 1 and catalog.get(image_id).caption == "grandpa's truck"
    report = caption_live(catalog, client, [image_id], settings, overwrite_human=True)
    assert report.captioned == 1 and catalog.get(image_id).caption_source == "claude-live"
    assert [h.source for h in catalog.history(image_id)] == ["claude-live", "human"]


def test_live_cancel_stops_sending_and_keeps_finished_work(tmp_path: Path, catalog: Catalog) -> None:
    settings = caption_settings(tmp_path)
    ids = add_cars(catalog, tmp_path / "cars", 3)
    client, stubber = stubbed("bedrock-runtime")
    stubber.add_response("converse", converse_response(reply_json()), expected_converse())
    done: list[int] = []
    report = caption_live(
        catalog,
        client,
        ids,
        settings,
        progress=lambda d, t, m: done.append(d),
        cancel=lambda: bool(done and done[-1] >= 1),
    )
    stubber.assert_no_pending_responses()
    assert report.cancelled and report.captioned == 1
    assert "run again" in report.summary()
    assert set(select_images(catalog)) == set(ids[1:])


def test_live_runs_a_few_requests_concurrently(tmp_path: Path, catalog: Catalog) -> None:
    settings = caption_settings(tmp_path, caption_concurrency=3)
    ids = add_cars(catalog, tmp_path / "cars", 7)

    class SlowClient:
        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.now = self.peak = self.calls = 0

        def converse(self, **request: Any) -> dict[str, Any]:
            with self.lock:
                self.now += 1
                self.calls += 1
                self.peak = max(self.peak, self.now)
            time.sleep(0.05)
            with self.lock:
                self.now -= 1
            return converse_response(reply_json())

    client = SlowClient()
    report = caption_live(catalog, client, ids, settings)
    assert report.captioned == 7 and client.calls == 7
    assert client.peak == 3


def test_live_records_unreadable_images_as_failures(tmp_path: Path, catalog: Catalog) -> None:
    settings = caption_settings(tmp_path)
    (image_id,) = add_cars(catalog, tmp_path / "cars", 1)
    Path(catalog.get(image_id).path).write_bytes(b"not an image any more")
    client, stubber = stubbed("bedrock-runtime")
    report = caption_live(catalog, client, [image_id], settings)
    assert report.failed == 1 and "image unreadable" in report.failures[0][1]


def test_missing_credentials_give_a_clear_message(
    tmp_path: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_aws_credentials(monkeypatch, tmp_path)
    with pytest.raises(AwsError, match="AWS_ACCESS_KEY_ID"):
        require_credentials()
    settings = caption_settings(tmp_path)
    ids = add_cars(catalog, tmp_path / "cars", 2)
    client = boto3.client("bedrock-runtime", region_name="us-east-1")  # a real client that finds no keys
    with pytest.raises(AwsError, match="credentials were not found"):
        caption_live(catalog, client, ids, settings)
    assert catalog.caption_failures() == [] and catalog.get(ids[0]).caption is None


def test_caption_selected_redoes_claude_captions_but_keeps_human_ones(tmp_path: Path, catalog: Catalog) -> None:
    settings = caption_settings(tmp_path)
    mine, claude = add_cars(catalog, tmp_path / "cars", 2)
    catalog.set_caption(mine, "my car", "human")
    catalog.set_caption(claude, "old", "claude-live", model=MODEL, prompt_version=PROMPT_VERSION)
    client, stubber = stubbed("bedrock-runtime")
    stubber.add_response("converse", converse_response(reply_json("green")), expected_converse())
    report = caption_selected(catalog, settings, [mine, claude], client=client)
    stubber.assert_no_pending_responses()
    assert (report.captioned, report.skipped_human) == (1, 1)
    assert catalog.get(claude).attributes["color"] == "green" and catalog.get(mine).caption == "my car"
