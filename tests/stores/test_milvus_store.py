"""Milvus only: moving between stores, `info`, and bad settings (unreachable URI, wrong token, foreign collection)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from admin.cli import main
from carmatch.config import Settings, load_settings
from carmatch.embedding.embedder import Embedder
from carmatch.errors import ConfigError, IndexMissingError
from carmatch.runtime import Runtime
from carmatch.stores.milvus_store import MilvusStore
from tests.milvus_server import MilvusServerAddress

pytest.importorskip("milvus_lite")

_COLLECTIONS = itertools.count()


@pytest.fixture(scope="module")
def milvus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Milvus Lite file for the module (its start-up is paid once)."""
    return tmp_path_factory.mktemp("milvus") / "store.db"


@pytest.fixture
def milvus_env(settings: Settings, milvus_file: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point Milvus settings at the module's file with a collection of the test's own; returns the alias."""
    alias = f"cli{next(_COLLECTIONS)}"
    monkeypatch.setenv("CARMATCH_MILVUS_URI", str(milvus_file))
    monkeypatch.setenv("CARMATCH_MILVUS_COLLECTION", alias)
    return alias


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _top_ids(settings: Settings, embedder: Embedder, text: str) -> list[str]:
    runtime = Runtime(settings, embedder=embedder)
    try:
        return [r.id for r in runtime.search(text=text, k=6).results]
    finally:
        runtime.close()


def test_migrate_to_milvus_and_back_copies_every_vector_without_re_embedding(
    milvus_env: str,
    embedder: Embedder,
    car_folder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert run(capsys, "ingest", str(car_folder))[0] == 0
    before = _top_ids(load_settings(), embedder, "a red car")
    monkeypatch.setattr(Embedder, "encode_images", lambda *a, **k: pytest.fail("migrate re-embedded an image"))
    monkeypatch.setattr(Embedder, "encode_image_tensor", lambda *a, **k: pytest.fail("migrate re-embedded an image"))

    code, out, _ = run(capsys, "index", "migrate", "--to", "milvus")
    assert code == 0 and "Copied 6 vector(s) from hnswlib to milvus; counts verified." in out
    assert "CARMATCH_VECTOR_STORE=milvus" in (tmp_path / ".env").read_text()
    monkeypatch.setenv("CARMATCH_VECTOR_STORE", "milvus")
    assert _top_ids(load_settings(), embedder, "a red car") == before
    info = json.loads(run(capsys, "info", "--json")[1])
    assert (info["store"], info["index_size"]) == ("milvus", 6) and milvus_env in info["store_location"]

    code, out, _ = run(capsys, "index", "migrate", "--to", "hnswlib")
    assert code == 0 and "Copied 6 vector(s) from milvus to hnswlib" in out
    assert (tmp_path / ".env").read_text().count("CARMATCH_VECTOR_STORE=") == 1
    assert "CARMATCH_VECTOR_STORE=hnswlib" in (tmp_path / ".env").read_text()
    monkeypatch.setenv("CARMATCH_VECTOR_STORE", "hnswlib")
    assert _top_ids(load_settings(), embedder, "a red car") == before


def test_migrate_to_the_store_in_use_is_refused(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "index", "migrate", "--to", "hnswlib")
    assert code == 1 and "is the store in use" in err


def test_unreachable_milvus_names_the_uri_setting_and_leaves_the_catalog_untouched(
    settings: Settings, car_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CARMATCH_VECTOR_STORE", "milvus")
    monkeypatch.setenv("CARMATCH_MILVUS_URI", "http://127.0.0.1:1")
    code, _, err = run(capsys, "ingest", str(car_folder))
    assert code == 1 and "CARMATCH_MILVUS_URI" in err and "127.0.0.1:1" in err
    runtime = Runtime(load_settings())
    try:
        assert runtime.catalog.count() == 0
        assert any("CARMATCH_MILVUS_URI" in problem for problem in runtime.info(load_model=False)["problems"])
    finally:
        runtime.close()


def test_a_bad_vector_store_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARMATCH_VECTOR_STORE", "faiss")
    with pytest.raises(ConfigError, match="CARMATCH_VECTOR_STORE"):
        load_settings()


def test_rejected_credentials_name_the_token_setting() -> None:
    from pymilvus.exceptions import MilvusException

    class RefusingClient:
        def list_collections(self) -> list[str]:
            raise MilvusException(code=1800, message="user hasn't authenticated")

    store = MilvusStore("https://milvus.example.com:19530", token="bad", client=RefusingClient())
    with pytest.raises(ConfigError, match="CARMATCH_MILVUS_TOKEN"):
        store.exists()


def test_a_collection_not_made_by_carmatch_is_refused_with_the_setting_to_change(
    milvus_file: Path, milvus_env: str
) -> None:
    store = MilvusStore(str(milvus_file), prefix=milvus_env)
    store.client.create_collection(f"{milvus_env}_gforeign", dimension=8)
    store.client.create_alias(f"{milvus_env}_gforeign", milvus_env)
    with pytest.raises(IndexMissingError, match="CARMATCH_MILVUS_COLLECTION"):
        store.load()


def test_an_overlong_attribute_is_cut_to_the_field_instead_of_failing_the_upsert(
    milvus_env: str, embedder: Embedder, car_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARMATCH_VECTOR_STORE", "milvus")
    runtime = Runtime(load_settings(), embedder=embedder)
    try:
        runtime.ingestor().ingest_folder(car_folder)
        record = runtime.catalog.find_by_path(str((car_folder / "red_sedan.jpg").resolve()))
        assert record is not None
        runtime.catalog.set_caption(record.id, "a car", "human", attributes={"color": "red", "make": "é" * 400})
        hits = runtime.search(text="a car", k=6, where={"color": "red"}).results
        assert [hit.id for hit in hits] == [record.id]
    finally:
        runtime.close()


def _catalog_count() -> int:
    runtime = Runtime(load_settings())
    try:
        return runtime.catalog.count()
    finally:
        runtime.close()


def test_a_wrong_token_for_a_real_server_names_the_token_setting_and_leaves_the_catalog_untouched(
    settings: Settings,
    milvus_server: MilvusServerAddress,
    car_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CARMATCH_VECTOR_STORE", "milvus")
    monkeypatch.setenv("CARMATCH_MILVUS_URI", milvus_server.uri)
    for token in ("root:wrong", ""):  # a wrong password, and none at all for a server that wants one
        monkeypatch.setenv("CARMATCH_MILVUS_TOKEN", token)
        code, _, err = run(capsys, "ingest", str(car_folder))
        assert code == 1 and "CARMATCH_MILVUS_TOKEN" in err and "refused the credentials" in err, err
        assert "root:wrong" not in err  # the secret itself is never echoed
        assert _catalog_count() == 0
    monkeypatch.setenv("CARMATCH_MILVUS_TOKEN", milvus_server.token)
    monkeypatch.setenv("CARMATCH_MILVUS_COLLECTION", f"token{next(_COLLECTIONS)}")
    code, out, err = run(capsys, "ingest", str(car_folder))
    assert code == 0, err
    assert _catalog_count() == 6


def test_a_collection_of_vectors_of_another_dimension_names_the_collection_setting_and_changes_nothing(
    settings: Settings,
    milvus_file: Path,
    milvus_env: str,
    embedder: Embedder,
    car_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from dataclasses import asdict

    from pymilvus import DataType, MilvusClient

    from carmatch.ingest.pipeline import manifest_for
    from carmatch.stores.milvus_store import MANIFEST_PROPERTY

    store = MilvusStore(str(milvus_file), prefix=milvus_env)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=embedder.dim * 2)
    name = f"{milvus_env}_gwide"
    properties = {MANIFEST_PROPERTY: json.dumps(asdict(manifest_for(embedder)))}  # says embedder.dim
    store.client.create_collection(name, schema=schema, properties=properties)
    store.client.create_alias(name, milvus_env)
    monkeypatch.setenv("CARMATCH_VECTOR_STORE", "milvus")

    code, _, err = run(capsys, "ingest", str(car_folder))
    assert code == 1 and "CARMATCH_MILVUS_COLLECTION" in err and f"{embedder.dim * 2}-d" in err
    assert _catalog_count() == 0


def test_a_collection_built_by_a_model_of_another_dimension_is_refused_naming_the_collection_setting(
    settings: Settings,
    milvus_file: Path,
    milvus_env: str,
    embedder: Embedder,
    car_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from carmatch.stores.index import IndexManifest

    store = MilvusStore(str(milvus_file), prefix=milvus_env)
    titan = IndexManifest("bedrock/amazon.titan-embed-image-v1", "titan", "bedrock", "0" * 64, embedder.dim * 32)
    store.save(store.new_index(titan))
    monkeypatch.setenv("CARMATCH_VECTOR_STORE", "milvus")

    code, _, err = run(capsys, "ingest", str(car_folder))
    assert code == 1 and "built with model titan" in err and "CARMATCH_MILVUS_COLLECTION" in err
    assert _catalog_count() == 0
    assert store.read_manifest().dim == embedder.dim * 32  # the other model's collection is kept as it was


def test_a_server_answers_every_row_of_a_new_collection_as_soon_as_the_alias_moves(
    milvus_server: MilvusServerAddress, tmp_path: Path
) -> None:
    """A server indexes and hands off segments in the background; save waits until all of it is served."""
    from carmatch.stores.index import IndexManifest

    store = MilvusStore(milvus_server.uri, token=milvus_server.token, prefix=f"handoff{next(_COLLECTIONS)}")
    vectors = np.random.default_rng(7).normal(size=(5000, 32)).astype(np.float32)
    ids = [f"img{i}" for i in range(len(vectors))]
    index = store.new_index(IndexManifest("m", "tiny", "", "0", 32))
    for start in range(0, len(ids), 1000):
        index.add(ids[start : start + 1000], vectors[start : start + 1000])
    store.save(index)
    live = store.load("m")
    assert len(live) == 5000
    probes = range(0, 5000, 125)
    assert [live.search(vectors[i], k=1)[0][0] for i in probes] == [ids[i] for i in probes]
    live.remove(ids[:10])
    assert len(live) == 4990 and ids[0] not in live  # counts and lookups see this client's delete at once
