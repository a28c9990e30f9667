"""Synthetic data the benchmarks share: clustered unit vectors like CLIP embeddings, and percentiles.

numpy only, so a benchmark can run in a side environment without carmatch's dependencies
(``bench/milvus_lite_index_bench.py`` under another Milvus Lite release).
"""

from __future__ import annotations

import numpy as np


def pct(samples: list[float], q: float) -> float:
    """The q-th percentile of samples, in milliseconds."""
    return float(np.percentile(np.array(samples) * 1000, q))


def clustered(n: int, dim: int, seed: int, clusters: int = 1000, kind: str = "real") -> np.ndarray:
    """Unit vectors around cluster centres.

    ``real``: like CLIP image embeddings: a shared direction (random pairs have cosine ~0.3),
    cluster centres and within-cluster variation in a 64-dimensional subspace, plus a little
    isotropic noise. ``stress``: isotropic 512-d noise around the centres, close to random
    data, where graph indexes are at their worst.
    """
    space = np.random.default_rng(1234)  # the same "embedding space" for data and queries
    rng = np.random.default_rng(seed)
    if kind == "stress":
        centres = space.normal(size=(clusters, dim)).astype(np.float32)
        points = centres[rng.integers(0, clusters, n)] + 0.5 * rng.normal(size=(n, dim)).astype(np.float32)
    else:
        latent = 64
        common = space.normal(size=dim)
        basis = np.linalg.qr(space.normal(size=(dim, latent)))[0].T
        centres = space.normal(size=(clusters, latent)) @ basis + 0.15 * space.normal(size=(clusters, dim))
        shared = 0.8 * common / np.linalg.norm(common) * np.sqrt(latent)
        points = (
            shared
            + centres[rng.integers(0, clusters, n)]
            + (0.35 * rng.normal(size=(n, latent))) @ basis
            + 0.1 * rng.normal(size=(n, dim))
        )
    points = points.astype(np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)
