"""One contract, two vector stores: search, ingest, filters, delete, activation, rebuild and crash repair
behave the same on hnswlib and on Milvus, both as Milvus Lite (one file for the whole module) and as a
real Milvus server (one for the test session, tests/milvus_server.py).

Every test runs on hnswlib and Milvus Lite. The real server (about 12 s of collection set-up per test) runs
the ones where a server behaves unlike Lite: filters after caption edits (attribute upserts read back at
Session consistency), crash repair (counts at Strong) and activation (a new collection indexed, loaded and
swapped in behind the alias). Its own tests are in test_milvus_store.py (tokens, the alias hand-off, deletes).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from carmatch.config import load_settings
from carmatch.dataset import bulk
from carmatch.embedding.embedder import Embedder
from carmatch.errors import CancelledError, ModelMismatchError
from carmatch.ingest.rebuild import rebuild_index
from carmatch.runtime import Runtime
from carmatch.training import registry
from tests.conftest import tiny_model_environment
from tests.milvus_server import MilvusServerAddress

pytest.importorskip("milvus_lite")

_COLLECTIONS = itertools.count()
LOCAL_STORES = ["hnswlib", "milvus-lite"]  # the tests a real server adds nothing to (see the module docstring)


@pytest.fixture(scope="module")
def milvus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Milvus Lite file for the module: its start-up is paid once; each test has its own collection."""
    return tmp_path_factory.mktemp("milvus") / "contract.db"


@pytest.fixture(params=["hnswlib", "milvus-lite", "milvus-server"])
def store_runtime(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tiny_model: tuple[str, str],
    embedder: Embedder,
    milvus_file: Path,
) -> Iterator[Runtime]:
    """A Runtime with the tiny model over one store: hnswlib, a Milvus Lite file, or a real Milvus server."""
    tiny_model_environment(monkeypatch, tiny_model)
    if request.param.startswith("milvus"):
        monkeypatch.setenv("CARMATCH_VECTOR_STORE", "milvus")
        monkeypatch.setenv("CARMATCH_MILVUS_COLLECTION", f"contract{next(_COLLECTIONS)}")
    if request.param == "milvus-lite":
        monkeypatch.setenv("CARMATCH_MILVUS_URI", str(milvus_file))
    if request.param == "milvus-server":
        server: MilvusServerAddress = request.getfixturevalue("milvus_server")
        monkeypatch.setenv("CARMATCH_MILVUS_URI", server.uri)
        monkeypatch.setenv("CARMATCH_MILVUS_TOKEN", server.token)
    runtime = Runtime(load_settings(), embedder=embedder)
    assert runtime.store.kind == request.param.split("-")[0]
    yield runtime
    runtime.close()


@pytest.fixture
def indexed(store_runtime: Runtime, car_folder: Path) -> Runtime:
    """Six drawn cars ingested into the store."""
    report = store_runtime.ingestor().ingest_folder(car_folder)
    assert report.embedded == 6
    return store_runtime


def _id_of(runtime: Runtime, path: Path) -> str:
    record = runtime.catalog.find_by_path(str(path.resolve()))
    assert record is not None
    return record.id


@pytest.mark.parametrize("store_runtime", LOCAL_STORES, indirect=True)
def test_each_image_queried_by_itself_comes_back_first(indexed: Runtime, car_folder: Path) -> None:
    assert len(indexed.index()) == 6 and indexed.info(load_model=False)["index_size"] == 6
    for path in sorted(p for p in car_folder.rglob("*.*") if p.is_file()):
        results = indexed.search(image=path, k=3).results
        assert Path(results[0].path) == path.resolve()
        assert results[0].score == pytest.approx(1.0, abs=1e-3)
        assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_filters_return_k_results_whenever_k_images_match_and_follow_caption_edits(
    indexed: Runtime, car_folder: Path
) -> None:
    reds = [car_folder / "red_sedan.jpg", car_folder / "sub" / "yellow_sedan.bmp", car_folder / "white_van.png"]
    for path in reds:
        indexed.catalog.set_caption(_id_of(indexed, path), "a car", "human", attributes={"color": "Red"})
    query = car_folder / "blue_pickup.png"  # the nearest image is not red: the filter must act inside the search
    hits = indexed.search(image=query, k=3, where={"color": "red"}).results
    assert {r.id for r in hits} == {_id_of(indexed, p) for p in reds}
    assert len(indexed.search(image=query, k=2, where={"color": "red"}).results) == 2
    assert len(indexed.search(image=query, k=6, where={"color": "red", "review_state": "unreviewed"}).results) == 3

    indexed.catalog.set_caption(_id_of(indexed, reds[0]), "a car", "human", attributes={"color": "blue"})
    indexed.catalog.set_review_state(_id_of(indexed, reds[1]), "approved")
    assert {r.id for r in indexed.search(image=query, k=6, where={"color": "red"}).results} == {
        _id_of(indexed, p) for p in reds[1:]
    }
    approved = indexed.search(image=query, k=6, where={"review_state": "approved"}).results
    assert [r.id for r in approved] == [_id_of(indexed, reds[1])]
    none = indexed.search(image=query, k=6, where={"color": "purple"})
    assert none.results == [] and "No image matches the filters." in none.notes


@pytest.mark.parametrize("store_runtime", LOCAL_STORES, indirect=True)
def test_bulk_delete_removes_images_from_search_at_once(indexed: Runtime, car_folder: Path) -> None:
    gone = _id_of(indexed, car_folder / "red_sedan.jpg")
    report = bulk.bulk_delete(indexed.catalog, indexed.store, [gone])
    assert report.changed == 1
    assert gone not in indexed.store.load()
    assert len(indexed.index()) == 5
    assert gone not in {r.id for r in indexed.search(image=car_folder / "red_sedan.jpg", k=6).results}


@pytest.mark.parametrize("store_runtime", LOCAL_STORES, indirect=True)
def test_store_refuses_an_index_built_by_another_model(indexed: Runtime) -> None:
    with pytest.raises(ModelMismatchError, match="index rebuild"):
        indexed.store.load("some-other-model@123")


def test_ingest_repairs_a_crash_between_catalog_commit_and_store_write(
    indexed: Runtime, car_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lost = _id_of(indexed, car_folder / "white_van.png")
    index = indexed.store.load()
    index.remove([lost])  # the catalog holds image and embedding; the store write never happened
    indexed.store.save(index)
    assert lost not in indexed.store.load()
    encoded: list[int] = []
    original = Embedder.encode_image_tensor
    monkeypatch.setattr(Embedder, "encode_image_tensor", lambda self, t: encoded.append(len(t)) or original(self, t))
    report = indexed.ingestor().ingest_folder(car_folder)
    assert report.embedded == 0 and encoded == []  # repaired from the cached embedding, nothing re-embedded
    assert lost in indexed.store.load() and len(indexed.index()) == 6
    assert indexed.search(image=car_folder / "white_van.png", k=1).results[0].id == lost


@pytest.mark.parametrize("store_runtime", LOCAL_STORES, indirect=True)
def test_rebuild_reuses_cached_embeddings_and_swaps_generations(
    indexed: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = indexed.store.current_generation()
    monkeypatch.setattr(Embedder, "encode_images", lambda *a, **k: pytest.fail("rebuild re-embedded an image"))
    index, failures = rebuild_index(indexed.catalog, indexed.embedder, indexed.store)
    assert failures == [] and len(index) == 6
    assert indexed.store.current_generation() not in (None, before)
    assert len(indexed.index()) == 6


@pytest.mark.parametrize("store_runtime", LOCAL_STORES, indirect=True)
def test_cancelled_rebuild_leaves_the_previous_index_serving(indexed: Runtime) -> None:
    before = indexed.store.current_generation()
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(CancelledError):
        rebuild_index(indexed.catalog, indexed.embedder, indexed.store, cancel=cancel)
    assert indexed.store.current_generation() == before
    assert len(indexed.search(text="a car", k=6).results) == 6
    if indexed.store.kind == "milvus":  # the unfinished collection is dropped, not left behind
        client = indexed.store.client  # type: ignore[attr-defined]
        assert [c for c in client.list_collections() if c.startswith(f"{indexed.store.alias}_")] == [before]  # type: ignore[attr-defined]


def test_activation_builds_beside_the_live_index_and_switches(
    indexed: Runtime, tiny_model: tuple[str, str], tmp_path: Path
) -> None:
    state = torch.load(tiny_model[1], weights_only=True)
    generator = torch.Generator().manual_seed(1)
    nudged = {
        k: v + 0.05 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v
        for k, v in state.items()
    }
    checkpoint = tmp_path / "runs" / "run-x" / "best.pt"
    checkpoint.parent.mkdir(parents=True)
    torch.save(nudged, checkpoint)
    registry.register_model(indexed.catalog, "run-x", "local", tiny_model[0], tiny_model[1], "ready", str(checkpoint))
    base_key, before = indexed.embedder.model_key, indexed.store.current_generation()
    result = registry.activate(indexed, "run-x")
    assert result.rebuilt and result.indexed == 6 and result.model_key != base_key
    assert indexed.store.read_manifest().model_key == result.model_key
    assert indexed.store.current_generation() != before
    assert len(indexed.search(text="a red car", k=3).results) == 3
    if indexed.store.kind == "milvus":  # the old collection is dropped after the alias switch
        client = indexed.store.client  # type: ignore[attr-defined]
        assert before not in client.list_collections()
    query = np.asarray(indexed.embedder.encode_texts(["a van"])[0])
    assert len(indexed.index().search(query, k=6)) == 6
