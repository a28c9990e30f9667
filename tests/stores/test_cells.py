"""Cell search (IVF): recall on image-like and text-like queries, measured probes, filters, the exact fallback."""

from __future__ import annotations

import numpy as np
import pytest

from carmatch.stores import tuning
from carmatch.stores.index import VectorIndex
from tests.stores.test_index import clustered, manifest


def cells_index(n: int, probes: int = 0) -> VectorIndex:
    index = VectorIndex(manifest(), exact_max=10, ann="cells", probes=probes)
    index.add([f"img{i}" for i in range(n)], clustered(n))
    return index


def text_like(vectors: np.ndarray, cosine: float = 0.25, seed: int = 3) -> np.ndarray:
    """Each vector moved to ``cosine`` of itself in a random direction (where text queries land)."""
    noise = np.random.default_rng(seed).normal(size=vectors.shape).astype(np.float32)
    noise -= (noise * vectors).sum(axis=1, keepdims=True) * vectors
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return (cosine * vectors + np.sqrt(1 - cosine**2) * noise).astype(np.float32)


def recall(index: VectorIndex, queries: np.ndarray) -> float:
    hits = sum(len({i for i, _ in index.search(q, 10)} & {i for i, _ in index.search_exact(q, 10)}) for q in queries)
    return hits / (10 * len(queries))


@pytest.fixture(scope="module")
def index() -> VectorIndex:
    return cells_index(3000)


def test_measured_probes_reach_the_target_for_photo_and_text_queries_never_seen(index: VectorIndex) -> None:
    probes = index.search_probes()
    assert probes in tuning.PROBE_CANDIDATES and probes < len(index.cells)  # not a full scan
    unseen = clustered(80, seed=7)
    assert recall(index, unseen) >= 0.99
    assert recall(index, text_like(unseen)) >= 0.99


def test_scores_are_exact_cosines_best_first(index: VectorIndex) -> None:
    q = clustered(1, seed=9)[0]
    got = index.search(q, 10)
    for image_id, score in got:
        assert score == pytest.approx(float(index.vector(image_id) @ q), abs=1e-5)
    assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)


def test_a_selective_filter_gets_its_exact_best(index: VectorIndex) -> None:
    allowed = {f"img{i}" for i in range(0, 3000, 37)}
    q = text_like(clustered(1, seed=4))[0]
    got = index.search(q, 10, allowed=allowed)
    truth = sorted(allowed, key=lambda i: -float(index.vector(i) @ q))[:10]
    assert [i for i, _ in got] == truth


def test_a_configured_probe_count_wins_and_nothing_is_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("carmatch.stores.index.choose_width", lambda *a, **k: pytest.fail("measured"))
    index = cells_index(500, probes=3)
    assert index.search_probes() == 3 and len(index.search(clustered(1, seed=2)[0], 5)) == 5


def test_rows_added_after_the_cells_were_learnt_are_found(index: VectorIndex) -> None:
    fresh = clustered(3, seed=21)
    index.add(["late0", "late1", "late2"], fresh)
    assert [index.search(v, 1)[0][0] for v in fresh] == ["late0", "late1", "late2"]
    index.remove(["late1"])
    assert "late1" not in {i for i, _ in index.search(fresh[1], 20)}
