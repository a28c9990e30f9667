"""The one unit-normalise: every vector the embedder returns and the index stores or queries goes through it."""

from __future__ import annotations

import numpy as np


def unit_rows(vectors: np.ndarray | list[float] | list[list[float]]) -> np.ndarray:
    """``vectors`` as 2-D float32 rows of length 1; a 1-D vector becomes one row, a zero row stays zero."""
    rows = np.asarray(vectors, dtype=np.float32)
    if rows.ndim == 1:
        rows = rows[None, :]
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (rows / norms).astype(np.float32)
