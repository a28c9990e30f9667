"""hnswlib's ef chosen by measurement: smallest ef reaching recall@10 0.99, saved, reused, re-checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hnswlib
import numpy as np
import pytest

from carmatch.stores import tuning
from carmatch.stores.hnsw_store import IndexStore
from carmatch.stores.index import IndexManifest, VectorIndex
from tests.stores.test_index import clustered, manifest, recall_at_10


def graph_index(n: int, ef_search: int = 0) -> VectorIndex:
    index = VectorIndex(manifest(), exact_max=10, ef_search=ef_search, ann="hnsw")
    index.add([f"img{i}" for i in range(n)], clustered(n))
    return index


def raw_graph(vectors: np.ndarray) -> Any:
    """An hnswlib graph labelled by row, built on one thread (the same graph every run)."""
    graph = hnswlib.Index(space="cosine", dim=vectors.shape[1])
    graph.init_index(max_elements=len(vectors), ef_construction=200, M=16, random_seed=0)
    graph.add_items(vectors, np.arange(len(vectors)), num_threads=1)
    return graph


def test_the_search_ef_is_one_candidate_above_the_smallest_reaching_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    vectors = clustered(3000)
    alive = np.ones(len(vectors), dtype=bool)
    graph = raw_graph(vectors)
    ef, recall = tuning.choose_ef(graph, vectors, alive)
    assert recall >= tuning.RECALL_TARGET and ef < 1024
    reached = tuning.EF_CANDIDATES[tuning.EF_CANDIDATES.index(ef) - tuning.HEADROOM_STEPS]
    smaller = tuple(c for c in tuning.EF_CANDIDATES if c < reached)
    if smaller:  # every smaller candidate falls short: the search stops at the largest of them
        monkeypatch.setattr(tuning, "EF_CANDIDATES", smaller)
        assert tuning.choose_ef(graph, vectors, alive)[1] < tuning.RECALL_TARGET


def test_the_measured_ef_reaches_the_target_on_queries_it_never_saw() -> None:
    index = graph_index(3000)
    assert index.search_ef() < 1024 and index.manifest.ef_recall >= tuning.RECALL_TARGET
    assert recall_at_10(index, clustered(100, seed=7)) >= 0.99  # queries from elsewhere in the space too


def test_the_measured_ef_is_saved_with_the_index_and_reused_on_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = IndexStore(tmp_path / "idx", exact_max=10, ann="hnsw")
    index = graph_index(2000)
    store.save(index)
    measured = store.read_manifest()
    assert measured.ef_search in tuning.EF_CANDIDATES and measured.ef_recall >= 0.99 and measured.ef_count == 2000
    monkeypatch.setattr("carmatch.stores.index.choose_ef", lambda *a: pytest.fail("measured again on load"))
    loaded = store.load()
    assert loaded.search_ef() == measured.ef_search
    assert len(loaded.search(clustered(1, seed=3)[0], 10)) == 10


def test_the_ef_is_measured_again_once_the_collection_grew_by_a_tenth(monkeypatch: pytest.MonkeyPatch) -> None:
    index = graph_index(1000)
    first = index.search_ef()
    calls: list[int] = []
    original = tuning.choose_ef
    monkeypatch.setattr(
        "carmatch.stores.index.choose_ef",
        lambda graph, v, alive: calls.append(int(alive.sum())) or original(graph, v, alive),
    )
    more = clustered(1200, seed=5)
    index.add([f"new{i}" for i in range(50)], more[:50])  # +5 %: the measurement still holds
    assert index.search_ef() == first and calls == []
    index.add([f"new{i}" for i in range(50, 200)], more[50:200])  # +20 %: measured again
    index.search_ef()
    assert calls == [1200] and index.manifest.ef_count == 1200


def test_a_configured_ef_wins_and_nothing_is_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("carmatch.stores.index.choose_ef", lambda *a: pytest.fail("measured despite a set ef"))
    index = graph_index(500, ef_search=77)
    assert index.search_ef() == 77 and len(index.search(clustered(1, seed=2)[0], 5)) == 5


def test_exact_neighbours_match_a_plain_sort_across_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuning, "EXACT_BLOCK_ROWS", 64)  # several blocks, merged
    vectors = clustered(300)
    alive = np.ones(300, dtype=bool)
    alive[::7] = False
    queries = clustered(5, seed=9)
    got = tuning.exact_neighbours(vectors, alive, queries, 10)
    scores = np.where(alive, queries @ vectors.T, -np.inf)
    assert (got == np.argsort(-scores, axis=1, kind="stable")[:, :10]).all()
    assert IndexManifest("k", "m", "p", "h", 4).ef_search == 0  # an old manifest reads as "not measured yet"


def test_an_unreachable_target_takes_the_ef_where_recall_levels_off_not_the_largest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vectors = clustered(3000)
    alive = np.ones(len(vectors), dtype=bool)
    graph = raw_graph(vectors)
    monkeypatch.setattr(tuning, "RECALL_TARGET", 1.01)  # no ef can reach it
    ef, recall = tuning.choose_ef(graph, vectors, alive)
    assert ef < tuning.EF_CANDIDATES[-1] // 4  # recall is flat long before 2048 on this collection
    graph.set_ef(tuning.EF_CANDIDATES[-1])
    monkeypatch.setattr(tuning, "EF_CANDIDATES", (tuning.EF_CANDIDATES[-1],))
    best = tuning.choose_ef(graph, vectors, alive)[1]
    assert recall >= best - tuning.PLATEAU_SLACK
