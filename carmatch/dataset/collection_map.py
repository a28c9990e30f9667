"""A map of the collection: every image embedding projected to 2-D, cached per model, drawn downsampled.

The projection is PCA (the two directions of largest variance of the image embeddings), computed
from the d x d covariance of a fixed sample of at most 20,000 of them, then every image projected:
linear in the collection, seconds at 100,000 images, deterministic (the same collection gives the
same map), and numpy only. UMAP (``umap-learn``) separates clusters better but took 8 minutes for
100,000 points on this project's two cores (plus a numba compile on first use) and brings ~410 MB of
dependencies (llvmlite, scipy, scikit-learn, numba); docs/curating.md has the numbers. The map is
cached per model and collection version (:mod:`carmatch.dataset.curation_cache`);
:func:`downsample` picks the points a browser draws (``MAX_DRAWN_POINTS``), and :func:`point_labels`
gives the colour of each point by an attribute, the review state or the suspect score.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carmatch.catalog import ATTRIBUTE_COLUMNS, Catalog, ImageRecord
from carmatch.dataset.curation_cache import fingerprint, load_result, save_result
from carmatch.errors import CancelledError, InvalidInputError
from carmatch.progress import Progress, no_progress

MAX_DRAWN_POINTS = 10_000  # drawn smoothly by a browser (Plotly WebGL), built and sent in about a second
AXES_SAMPLE = 20_000  # rows the principal axes are computed from (enough for two axes; 5x less work at 100k)
ID_CHUNK = 5000
COLOUR_BY = (*ATTRIBUTE_COLUMNS, "review_state", "suspect score")


@dataclass(frozen=True)
class CollectionMap:
    """2-D positions of the embedded images: ``xy[i]`` is image ``ids[i]``."""

    ids: list[str]
    xy: np.ndarray  # (n, 2) float32
    model_key: str


def project(vectors: np.ndarray, sample_rows: int = AXES_SAMPLE) -> np.ndarray:
    """The vectors' coordinates on their first two principal components, (n, 2) float32, sign-fixed.

    The axes come from at most ``sample_rows`` rows (a fixed random sample: the same collection gives
    the same map), then every row is projected on them.
    """
    n = len(vectors)
    if n == 0:
        return np.zeros((0, 2), dtype=np.float32)
    rows = np.sort(np.random.default_rng(0).choice(n, size=sample_rows, replace=False)) if n > sample_rows else None
    sample = (vectors if rows is None else vectors[rows]).astype(np.float64)
    mean = sample.mean(axis=0)
    dim = vectors.shape[1]
    centred = sample - mean
    cov = centred.T @ centred
    _, basis = np.linalg.eigh(cov)
    axes = basis[:, ::-1][:, :2] if dim >= 2 else np.pad(basis, ((0, 0), (0, 2 - dim)))
    axes = axes * np.where(axes[np.abs(axes).argmax(axis=0), range(axes.shape[1])] < 0, -1.0, 1.0)
    weights = axes.astype(np.float32)  # project in float32: no float64 copy of the whole collection
    return (vectors @ weights - (mean @ axes).astype(np.float32)).astype(np.float32)


def collection_map(
    catalog: Catalog,
    model_key: str,
    home: Path,
    progress: Progress = no_progress,
    cancelled: Callable[[], bool] = lambda: False,
    refresh: bool = False,
) -> CollectionMap:
    """The map of every live image embedded under ``model_key`` (cached until the images change)."""
    ids = sorted(catalog.embedded_ids(model_key))
    version = fingerprint(ids)
    cached = None if refresh else load_result(home, "map", model_key, version)
    if cached is not None:
        return CollectionMap(cached["ids"], np.asarray(cached["xy"], dtype=np.float32).reshape(-1, 2), model_key)
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(ids), ID_CHUNK):
        if cancelled():
            raise CancelledError(f"Stopped after reading {start} of {len(ids)} embeddings")
        found.update(catalog.get_embeddings(model_key, ids[start : start + ID_CHUNK]))
        progress(min(start + ID_CHUNK, len(ids)), len(ids), "reading image embeddings")
    xy = project(np.stack([found[i] for i in ids])) if ids else np.zeros((0, 2), dtype=np.float32)
    save_result(home, "map", model_key, version, {"ids": ids, "xy": np.round(xy, 5).tolist()})
    return CollectionMap(ids, xy, model_key)


def downsample(count: int, max_points: int = MAX_DRAWN_POINTS, keep: Sequence[int] = (), seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``max_points`` of ``count`` points: all of ``keep``, the rest at random."""
    if count <= max_points:
        return np.arange(count)
    kept = np.unique(np.asarray(keep, dtype=np.int64))[:max_points]
    rest = np.setdiff1d(np.arange(count), kept)
    chosen = np.random.default_rng(seed).choice(rest, size=max_points - len(kept), replace=False)
    return np.sort(np.concatenate([kept, chosen]))


def point_labels(
    records: Mapping[str, ImageRecord], ids: Sequence[str], by: str, scores: Mapping[str, float] | None = None
) -> list[str] | list[float]:
    """Each point's colour: an attribute or review state as text (``"unknown"`` when unset), or its suspect score."""
    if by not in COLOUR_BY:
        raise InvalidInputError(field="colour_by", value=by, limit=COLOUR_BY, label="colour by")
    if by == "suspect score":
        known = scores or {}
        return [float(known.get(i, 0.0)) for i in ids]
    out: list[str] = []
    for i in ids:
        record = records.get(i)
        if record is None:
            out.append("unknown")
        elif by == "review_state":
            out.append(record.review_state)
        else:
            out.append(str(record.attributes.get(by) or "unknown").strip().lower() or "unknown")
    return out
