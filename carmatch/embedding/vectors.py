"""The one unit-normalise: every vector the embedder returns and the index stores or queries goes through it."""

from __future__ import annotations

import numpy as np

from carmatch.errors import InvalidInputError


def unit_rows(vectors: np.ndarray | list[float] | list[list[float]]) -> np.ndarray:
    """``vectors`` as 2-D float32 rows of length 1; a 1-D vector becomes one row, a zero row stays zero."""
    rows = np.asarray(vectors, dtype=np.float32)
    if rows.ndim == 1:
        rows = rows[None, :]
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (rows / norms).astype(np.float32)


def unit_rows_for(count: int, dim: int, vectors: np.ndarray) -> np.ndarray:
    """``vectors`` as unit rows, refused unless there is one row of ``dim`` values for each of ``count`` ids."""
    rows = unit_rows(vectors)
    if rows.shape != (count, dim):
        raise InvalidInputError(f"Embeddings have shape {rows.shape}, the index expects ({count}, {dim})")
    return rows
