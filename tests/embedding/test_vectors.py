"""The one unit-normalise shared by the embedder and the index."""

from __future__ import annotations

import numpy as np
import pytest

from carmatch.embedding.embedder import Embedder
from carmatch.embedding.vectors import unit_rows
from carmatch.stores.index import IndexManifest, VectorIndex


def test_rows_come_back_with_length_one_as_float32() -> None:
    rows = unit_rows(np.array([[3.0, 4.0], [0.0, -2.0]], dtype=np.float64))
    assert rows.dtype == np.float32
    np.testing.assert_allclose(rows, [[0.6, 0.8], [0.0, -1.0]], atol=1e-6)


def test_a_single_vector_becomes_one_row_and_a_zero_row_stays_zero() -> None:
    assert unit_rows([0.0, 2.0]).tolist() == [[0.0, 1.0]]
    assert unit_rows(np.zeros((2, 3))).tolist() == [[0.0] * 3] * 2


def test_the_index_stores_what_the_embedder_would_return(embedder: Embedder) -> None:
    raw = np.random.default_rng(0).normal(size=(3, embedder.dim)) * 7.0
    index = VectorIndex(IndexManifest("k", "m", "p", "h", embedder.dim))
    index.add(["a", "b", "c"], raw)
    stored = np.stack([index.vector(i) for i in ("a", "b", "c")])
    np.testing.assert_allclose(stored, unit_rows(raw), atol=1e-6)
    assert index.search(raw[1] * 3.0, 1)[0] == ("b", pytest.approx(1.0, abs=1e-5))
    texts = embedder.encode_texts(["a red car", "a blue van"])
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
