"""Titan Multimodal Embeddings as the search model: requests checked by botocore's Stubber, search end to end."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from PIL import Image

from carmatch.config import load_settings
from carmatch.embedding.embedder import Embedder
from carmatch.embedding.titan_embedder import TitanEmbedder, encode_image, is_bedrock_model, load_titan
from carmatch.errors import AwsError, ConfigError, ModelMismatchError
from carmatch.images import sha256_bytes
from carmatch.ingest.rebuild import rebuild_index
from carmatch.runtime import Runtime
from carmatch.search.searcher import Searcher

TITAN = "amazon.titan-embed-image-v1"
ANY_BODY = {"modelId": TITAN, "body": ANY, "contentType": "application/json", "accept": "application/json"}


def runtime_client() -> tuple[Any, Stubber]:
    """A real bedrock-runtime client (fake keys) with a Stubber activated: nothing reaches AWS."""
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    stub = Stubber(client)
    stub.activate()
    return client, stub


def answer(vector: list[float] | np.ndarray, tokens: int = 0) -> dict[str, Any]:
    """An invoke_model response whose body is Titan's JSON answer."""
    data = json.dumps({"embedding": [float(x) for x in vector], "inputTextTokenCount": tokens}).encode()
    return {"body": StreamingBody(io.BytesIO(data), len(data)), "contentType": "application/json"}


def expected(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "modelId": TITAN,
        "body": json.dumps(body).encode(),
        "contentType": "application/json",
        "accept": "application/json",
    }


def test_a_text_is_sent_as_input_text_with_the_chosen_length() -> None:
    client, stub = runtime_client()
    stub.add_response(
        "invoke_model",
        answer([3.0, 4.0] + [0.0] * 254, 2),
        expected({"embeddingConfig": {"outputEmbeddingLength": 256}, "inputText": "red van"}),
    )
    vectors = TitanEmbedder(client, TITAN, dim=256).encode_texts(["red van"])
    stub.assert_no_pending_responses()
    assert vectors.shape == (1, 256) and vectors.dtype == np.float32
    assert vectors[0, :2] == pytest.approx([0.6, 0.8])  # unit length, like CLIP vectors


def test_an_image_is_sent_as_base64_jpeg_in_input_image() -> None:
    client, stub = runtime_client()
    image = Image.new("RGB", (64, 48), "red")
    body = {"embeddingConfig": {"outputEmbeddingLength": 1024}, "inputImage": encode_image(image)}
    stub.add_response("invoke_model", answer(np.ones(1024)), expected(body))
    assert TitanEmbedder(client, TITAN).encode_images([image]).shape == (1, 1024)
    stub.assert_no_pending_responses()


def test_an_image_over_titans_2048_pixel_limit_is_shrunk_before_it_is_sent() -> None:
    sent = Image.open(io.BytesIO(base64.b64decode(encode_image(Image.new("RGB", (4096, 1024), "blue")))))
    assert sent.size == (2048, 512) and sent.format == "JPEG"
    small = Image.open(io.BytesIO(base64.b64decode(encode_image(Image.new("L", (300, 200))))))
    assert small.size == (300, 200) and small.mode == "RGB"


def test_calls_run_concurrently_and_results_keep_their_order() -> None:
    client, stub = runtime_client()
    for n in range(5):
        stub.add_response("invoke_model", answer(np.eye(256)[n]), ANY_BODY)
    embedder = TitanEmbedder(client, TITAN, dim=256, concurrency=1)  # one at a time: answers arrive in order
    vectors = embedder.encode_texts([f"car {n}" for n in range(5)])
    assert [int(np.argmax(v)) for v in vectors] == [0, 1, 2, 3, 4]


def test_a_short_or_missing_embedding_is_a_clear_error() -> None:
    client, stub = runtime_client()
    stub.add_response("invoke_model", answer([1.0] * 384), ANY_BODY)
    with pytest.raises(AwsError, match="384 numbers, expected 1024"):
        TitanEmbedder(client, TITAN).encode_texts(["car"])


def test_access_denied_says_what_to_check() -> None:
    client, stub = runtime_client()
    stub.add_client_error("invoke_model", "AccessDeniedException", "not authorized", 403)
    with pytest.raises(AwsError, match="access denied"):
        TitanEmbedder(client, TITAN).encode_texts(["car"])


def test_bad_titan_settings_are_refused_before_any_call(monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = runtime_client()
    settings = load_settings({"CARMATCH_MODEL": f"bedrock/{TITAN}"})
    assert is_bedrock_model(settings.model) and not is_bedrock_model("ViT-B-32")
    with pytest.raises(ConfigError, match="titan provision"):
        load_titan(
            "bedrock/arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.titan-embed-image-v1:0/abc",
            settings,
            client,
        )
    with pytest.raises(ConfigError, match="name the model"):
        load_titan("bedrock/", settings, client)
    with pytest.raises(ConfigError, match="256, 384, 1024"):
        TitanEmbedder(client, TITAN, dim=512)


def test_the_model_key_names_the_model_and_length() -> None:
    client, _ = runtime_client()
    a, b = TitanEmbedder(client, TITAN, 256), TitanEmbedder(client, TITAN, 1024)
    assert a.model_key.startswith("titan-256@") and a.model_key != b.model_key
    assert a.model_key == TitanEmbedder(client, TITAN, 256).model_key  # stable across processes


def test_ingest_search_manifest_and_rebuild_work_with_titan(
    monkeypatch: pytest.MonkeyPatch, car_folder: Path, embedder: Embedder
) -> None:
    monkeypatch.setenv("CARMATCH_MODEL", f"bedrock/{TITAN}")
    monkeypatch.setenv("CARMATCH_EMBED_DIM", "256")
    settings = load_settings()
    client, stub = runtime_client()
    titan = load_titan(settings.model, settings.with_overrides(titan_concurrency=1), client)
    rng = np.random.default_rng(0)
    for _ in range(6):
        stub.add_response("invoke_model", answer(rng.normal(size=256)), ANY_BODY)
    runtime = Runtime(settings, embedder=titan)
    try:
        report = runtime.ingestor().ingest_folder(car_folder)
        assert report.embedded == 6
        manifest = runtime.store.read_manifest()
        assert (manifest.model_key, manifest.dim, manifest.model) == (titan.model_key, 256, f"bedrock/{TITAN}")

        photo = car_folder / "blue_pickup.png"
        photo_id = sha256_bytes(photo.read_bytes())
        cached = runtime.catalog.get_embeddings(titan.model_key, [photo_id])[photo_id]
        stub.add_response("invoke_model", answer(cached), ANY_BODY)  # the photo query
        assert runtime.search(image=photo, k=3).results[0].id == photo_id
        stub.add_response("invoke_model", answer(cached), ANY_BODY)  # a text Titan places at the photo
        assert runtime.search(text="blue pickup", k=3).results[0].id == photo_id
        stub.add_response("invoke_model", answer(cached), ANY_BODY)  # both: text and photo
        stub.add_response("invoke_model", answer(cached), ANY_BODY)
        assert runtime.search(text="blue pickup", image=photo, k=3).results[0].id == photo_id

        with pytest.raises(ModelMismatchError):  # an index built by Titan is refused to the CLIP model
            Searcher(embedder, runtime.index(), runtime.catalog)
        index, failures = rebuild_index(runtime.catalog, titan, runtime.store)  # cached: no call to Bedrock
        assert len(index) == 6 and not failures
        stub.assert_no_pending_responses()
    finally:
        runtime.close()
