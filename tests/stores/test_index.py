"""VectorIndex and IndexStore: exact vs cells vs hnswlib search, recall, deletion, atomic saves, manifests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from carmatch.config import ANN_METHODS
from carmatch.errors import IndexMissingError, ModelMismatchError
from carmatch.stores.hnsw_store import IndexStore
from carmatch.stores.index import IndexManifest, VectorIndex


def clustered(n: int, dim: int = 32, clusters: int = 50, seed: int = 0) -> np.ndarray:
    """Unit vectors around random cluster centres (real embeddings are clustered, not uniform)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    points = centres[rng.integers(0, clusters, n)] + 0.35 * rng.normal(size=(n, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def manifest(dim: int = 32, key: str = "tiny@abc") -> IndexManifest:
    return IndexManifest(model_key=key, model="tiny", pretrained="ckpt.pt", weights_hash="abc", dim=dim)


def make_index(n: int, exact_max: int, dim: int = 32, ann: str = "cells") -> tuple[VectorIndex, np.ndarray]:
    vectors = clustered(n, dim)
    index = VectorIndex(manifest(dim), exact_max=exact_max, ann=ann)
    index.add([f"img{i}" for i in range(n)], vectors)
    return index, vectors


def recall_at_10(index: VectorIndex, queries: np.ndarray) -> float:
    hits = 0
    for q in queries:
        exact = {i for i, _ in index.search_exact(q, 10)}
        approx = {i for i, _ in index.search(q, 10)}
        hits += len(exact & approx)
    return hits / (10 * len(queries))


@pytest.mark.parametrize("ann", ANN_METHODS)
def test_approximate_recall_at_10_on_clustered_data(ann: str) -> None:
    index, _ = make_index(3000, exact_max=100, ann=ann)
    assert index.approximate and (index.uses_cells if ann == "cells" else index.uses_hnsw)
    queries = clustered(100, seed=7)
    assert recall_at_10(index, queries) >= 0.99


def test_small_collections_are_searched_exactly() -> None:
    index, vectors = make_index(200, exact_max=1000)
    assert not index.approximate
    assert index.search(vectors[5], 1)[0] == ("img5", pytest.approx(1.0, abs=1e-5))
    assert not index.graph_built and not index.cells_built  # nothing built for an exact-only index


@pytest.mark.parametrize("ann", ANN_METHODS)
def test_removed_ids_never_come_back_in_either_mode(ann: str) -> None:
    for exact_max in (10, 10_000):
        index, vectors = make_index(500, exact_max=exact_max, ann=ann)
        index.remove(["img3", "img4"])
        assert "img3" not in index and len(index) == 498
        got = {i for i, _ in index.search(vectors[3], 50)}
        assert "img3" not in got and "img4" not in got
        index.add(["img3"], vectors[3:4])
        assert index.search(vectors[3], 1)[0][0] == "img3"


@pytest.mark.parametrize("ann", ANN_METHODS)
def test_filtered_search_returns_k_matches_whenever_they_exist(ann: str) -> None:
    index, vectors = make_index(2000, exact_max=100, ann=ann)
    allowed = {f"img{i}" for i in range(0, 2000, 97)}  # 21 scattered ids
    got = index.search(vectors[0], 15, allowed=allowed)
    assert len(got) == 15 and {i for i, _ in got} <= allowed
    assert len(index.search(vectors[0], 50, allowed=allowed)) == 21


def test_k_larger_than_collection_returns_everything() -> None:
    index, vectors = make_index(5, exact_max=100)
    assert len(index.search(vectors[0], 50)) == 5


@pytest.mark.parametrize("ann", ANN_METHODS)
def test_save_load_round_trip_gives_same_results(tmp_path: Path, ann: str) -> None:
    for exact_max in (100, 10_000):
        store = IndexStore(tmp_path / f"idx{exact_max}", exact_max=exact_max, ann=ann)
        index, vectors = make_index(800, exact_max=exact_max, ann=ann)
        index.remove(["img1"])
        store.save(index)
        loaded = store.load("tiny@abc")
        assert len(loaded) == 799 and "img1" not in loaded
        assert loaded.approximate == index.approximate
        for q in vectors[:20]:
            assert [i for i, _ in loaded.search(q, 10)] == [i for i, _ in index.search(q, 10)]
        assert loaded.manifest.count == 799


def test_loading_an_index_of_another_model_is_refused(tmp_path: Path) -> None:
    store = IndexStore(tmp_path / "idx")
    index, _ = make_index(10, exact_max=100)
    store.save(index)
    with pytest.raises(ModelMismatchError, match="carmatch index rebuild"):
        store.load("other-model@123")


def test_missing_index_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IndexMissingError, match="ingest"):
        IndexStore(tmp_path / "nothing").load()


def test_crash_during_save_leaves_previous_index_current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = IndexStore(tmp_path / "idx", exact_max=100)
    first, _ = make_index(50, exact_max=100)
    store.save(first)
    second, _ = make_index(60, exact_max=100)

    real_replace = os.replace

    def crash(src: str, dst: str) -> None:
        if str(dst).endswith("CURRENT"):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.save(second)
    monkeypatch.setattr(os, "replace", real_replace)
    assert len(store.load("tiny@abc")) == 50


def test_saving_a_new_index_replaces_the_generation_and_prunes_old_ones(tmp_path: Path) -> None:
    store = IndexStore(tmp_path / "idx", exact_max=100)
    index, vectors = make_index(30, exact_max=100)
    g1 = store.save(index)
    rebuilt, _ = make_index(30, exact_max=100)  # a rebuild: a new index, not the saved one changed
    rebuilt.add(["new"], vectors[:1])
    g2 = store.save(rebuilt)
    assert g1 != g2 and store.current_generation() == g2
    assert not (tmp_path / "idx" / g1).exists()
    assert len(store.load()) == 31
