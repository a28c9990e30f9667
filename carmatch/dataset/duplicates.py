"""Near-duplicates: copies of one photo (re-encoded, resized, slightly cropped) grouped by image embedding.

Exact copies are already one image (the id is the hash of the bytes). Near copies differ in bytes
but not in what they show: their image embeddings have a cosine above ``DEFAULT_COSINE`` (measured
by ``bench/curation_bench.py``). Every pair above it is linked and linked images form one group
(union-find), so a chain of small edits stays one group. The scan is exact: the embeddings are
compared chunk by chunk against all others, so no near copy is missed at any size.

Each scan records its groups as split groups (source ``near_duplicates``, see
:mod:`carmatch.dataset.training_set`): a group lands on one side of train / validation / test, so
no near copy of a test image is trained on. Groups are cached per model and collection version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carmatch.catalog import Catalog, ImageRecord
from carmatch.dataset.curation_cache import fingerprint, load_result, save_result
from carmatch.dataset.training_set import set_split_groups
from carmatch.errors import CancelledError, InvalidInputError
from carmatch.progress import Progress, no_progress

log = logging.getLogger(__name__)

DEFAULT_COSINE = 0.95  # image-embedding cosine above which two images are one photo (bench/curation_bench.py)
SPLIT_SOURCE = "near_duplicates"
ROW_CHUNK = 256  # rows compared at a time: 256 x 100k cosines = 100 MB
ID_CHUNK = 5000


@dataclass(frozen=True)
class DuplicateGroup:
    """Images that show one photo; ``keep`` is the suggested one (most pixels, then oldest)."""

    keep: str
    members: list[str]  # keep first, then the others by id
    cosine: float  # the lowest linking cosine in the group


def near_pairs(
    vectors: np.ndarray,
    threshold: float,
    progress: Progress = no_progress,
    cancelled: Callable[[], bool] = lambda: False,
) -> list[tuple[int, int, float]]:
    """Every pair (i < j) of unit vectors whose cosine is at least ``threshold``."""
    n = len(vectors)
    pairs: list[tuple[int, int, float]] = []
    for start in range(0, n, ROW_CHUNK):
        if cancelled():
            raise CancelledError(f"Stopped after comparing {start} of {n} images")
        sims = vectors[start : start + ROW_CHUNK] @ vectors[start:].T  # only j >= i: each pair once
        rows, cols = np.nonzero(sims >= threshold)
        for r, c in zip(rows.tolist(), cols.tolist()):
            if start + r < start + c:
                pairs.append((start + r, start + c, float(sims[r, c])))
        progress(min(start + ROW_CHUNK, n), n, "comparing images")
    return pairs


def group_pairs(n: int, pairs: Sequence[tuple[int, int, float]]) -> list[tuple[list[int], float]]:
    """Linked indices joined into groups of two or more, each with its lowest linking cosine."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in pairs:
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    members: dict[int, list[int]] = {}
    lowest: dict[int, float] = {}
    for i, _, cosine in pairs:
        lowest[root(i)] = min(lowest.get(root(i), 1.0), cosine)
    for i in range(n):
        members.setdefault(root(i), []).append(i)
    return [(group, lowest[r]) for r, group in members.items() if len(group) > 1]


def _keep_order(record: ImageRecord) -> tuple[int, str, str]:
    return (-(record.width * record.height), record.added_at, record.id)


def find_duplicates(
    catalog: Catalog,
    model_key: str,
    home: Path,
    threshold: float = DEFAULT_COSINE,
    progress: Progress = no_progress,
    cancelled: Callable[[], bool] = lambda: False,
    refresh: bool = False,
) -> list[DuplicateGroup]:
    """Near-duplicate groups of the live images embedded under ``model_key``; records them as split groups."""
    if not 0 < threshold <= 1:
        raise InvalidInputError(field="threshold", value=threshold, limit=(0, 1), label="duplicate cosine")
    ids = sorted(catalog.embedded_ids(model_key))
    version = fingerprint([f"{threshold:.6f}", *ids])
    cached = None if refresh else load_result(home, "duplicates", model_key, version)
    if cached is not None:
        groups = [DuplicateGroup(g["keep"], g["members"], g["cosine"]) for g in cached]
    else:
        vectors = np.zeros((len(ids), 1), dtype=np.float32)
        if ids:
            found: dict[str, np.ndarray] = {}
            for start in range(0, len(ids), ID_CHUNK):
                found.update(catalog.get_embeddings(model_key, ids[start : start + ID_CHUNK]))
                progress(min(start + ID_CHUNK, len(ids)), len(ids), "reading image embeddings")
            vectors = np.stack([found[i] for i in ids])
        linked = group_pairs(len(ids), near_pairs(vectors, threshold, progress, cancelled))
        groups = _ordered(catalog, [([ids[i] for i in group], cosine) for group, cosine in linked])
        save_result(home, "duplicates", model_key, version, [g.__dict__ for g in groups])
    set_split_groups(catalog, SPLIT_SOURCE, {m: min(g.members) for g in groups for m in g.members})
    return groups


def _ordered(catalog: Catalog, groups: list[tuple[list[str], float]]) -> list[DuplicateGroup]:
    """Groups with the suggested keeper first, largest groups first."""
    records = catalog.get_many([i for members, _ in groups for i in members])
    out = []
    for members, cosine in groups:
        present = sorted((records[i] for i in members if i in records), key=_keep_order)
        if len(present) > 1:
            keep = present[0].id
            out.append(DuplicateGroup(keep, [keep, *sorted(r.id for r in present[1:])], round(cosine, 4)))
    out.sort(key=lambda g: (-len(g.members), g.keep))
    return out
