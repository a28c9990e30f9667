"""How wide a search looks, chosen by measurement: hnswlib's ``ef``, the cells scanned (``probes``).

The smallest ef (or probe count) whose recall@10 reaches :data:`RECALL_TARGET` on a sample of the collection's own
vectors, each asked for its neighbours *other than itself* (so a query never finds its own row),
against exact search done as one BLAS matrix product per block of rows. Half the sample is moved
away from its vector first: queries (text above all) fall between clusters, where graphs do worst.
The result is stored in the index manifest and measured again when the collection has grown or shrunk by a tenth (a
rebuild always measures afresh).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from carmatch.stores.rows import VectorRows

log = logging.getLogger(__name__)

RECALL_TARGET = 0.99
PLATEAU_SLACK = 0.002  # when the target is out of reach: the smallest ef within this of the best recall
EF_CANDIDATES = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048)
PROBE_CANDIDATES = (4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)  # cells (stores.cells)
SAMPLE_QUERIES = 200
RECALL_K = 10
FAR_QUERY_COSINE = 0.25  # half the sample queries sit this far from the vector they started at
EXACT_BLOCK_ROWS = 65_536  # rows per matrix product while computing the exact neighbours
HEADROOM_STEPS = 1  # search one candidate above the smallest that met the target: 200 sample
# queries pin recall to about a percent, so other queries could land just under the target
REMEASURE_CHANGE = 0.1  # re-measure once the live count moved this fraction from the measured one


def exact_neighbours(vectors: np.ndarray | VectorRows, alive: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Labels of the ``k`` most similar live rows to each query, best first, by blocked matrix products."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_labels = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(vectors), EXACT_BLOCK_ROWS):
        block = vectors[start : start + EXACT_BLOCK_ROWS]
        scores = queries @ block.T
        scores[:, ~alive[start : start + len(block)]] = -np.inf
        merged_scores = np.concatenate([best_scores, scores], axis=1)
        labels = np.broadcast_to(np.arange(start, start + len(block)), scores.shape)
        merged_labels = np.concatenate([best_labels, labels], axis=1)
        top = np.argpartition(-merged_scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(merged_scores, top, axis=1)
        best_labels = np.take_along_axis(merged_labels, top, axis=1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    return np.take_along_axis(best_labels, order, axis=1)


def needs_measuring(measured_ef: int, measured_count: int, live: int) -> bool:
    """True when no ef was measured yet or the collection changed size by more than a tenth since."""
    return measured_ef <= 0 or abs(live - measured_count) > REMEASURE_CHANGE * max(measured_count, 1)


def choose_ef(graph: Any, vectors: np.ndarray | VectorRows, alive: np.ndarray, seed: int = 0) -> tuple[int, float]:
    """(ef to search with, the recall@10 it has at least) for an hnswlib graph over ``vectors``.

    ``vectors`` may be the index's memory-mapped rows: they are read block by block, never copied whole.

    That ef is :data:`HEADROOM_STEPS` candidates above the smallest one reaching RECALL_TARGET on the sample.
    """

    def answer(ef: int, queries: np.ndarray) -> np.ndarray:
        graph.set_ef(ef)
        return np.asarray(graph.knn_query(queries, k=RECALL_K + 1)[0])

    return choose_width(answer, EF_CANDIDATES, vectors, alive, seed, "hnswlib ef")


def choose_width(
    answer: Callable[[int, np.ndarray], np.ndarray],
    candidates: Sequence[int],
    vectors: np.ndarray | VectorRows,
    alive: np.ndarray,
    seed: int = 0,
    what: str = "width",
) -> tuple[int, float]:
    """(width to search with, its recall@10) for a search ``answer(width, queries) -> labels`` (k+1 per row).

    The width is :data:`HEADROOM_STEPS` candidates above the smallest reaching RECALL_TARGET on the
    sample (image-like and text-like queries together; each kind's recall is logged).
    """
    live = np.flatnonzero(alive)
    if len(live) <= RECALL_K + 1:
        return candidates[0], 1.0
    picks = np.random.default_rng(seed).choice(live, size=min(SAMPLE_QUERIES, len(live)), replace=False)
    queries = _with_far_queries(vectors[picks], np.random.default_rng(seed + 1))
    truth = [_others(row, label) for label, row in zip(picks, exact_neighbours(vectors, alive, queries, RECALL_K + 1))]
    wanted = sum(len(t) for t in truth)
    curve: list[float] = []
    for step, width in enumerate(candidates):
        found = answer(width, queries)
        hits = [len(_others(row, label) & t) for label, row, t in zip(picks, found, truth)]
        curve.append(sum(hits) / wanted)
        if curve[-1] >= RECALL_TARGET:
            log.info(
                "%s %d reaches recall@10 %.4f on %d of the collection's vectors (image-like %.4f, text-like %.4f)",
                what,
                width,
                curve[-1],
                len(picks),
                sum(hits[0::2]) / max(1, sum(len(t) for t in truth[0::2])),
                sum(hits[1::2]) / max(1, sum(len(t) for t in truth[1::2])),
            )
            return candidates[min(step + HEADROOM_STEPS, len(candidates) - 1)], curve[-1]
    # The target is out of reach: take where the curve levels off, not the largest width (ef 2048
    # costs several times 128 for the last thousandth of recall).
    step = next(i for i, recall in enumerate(curve) if recall >= max(curve) - PLATEAU_SLACK)
    step = min(step + HEADROOM_STEPS, len(candidates) - 1)
    log.warning(
        "%s reaches recall@10 %.4f at most (%d); searching with %d (recall %.4f), where it levels off",
        what,
        max(curve),
        candidates[curve.index(max(curve))],
        candidates[step],
        curve[step],
    )
    return candidates[step], curve[step]


def _others(row: np.ndarray, query_label: int) -> set[int]:
    """The first RECALL_K labels of a best-first row, leaving out the query's own."""
    return set([int(label) for label in row if int(label) != int(query_label)][:RECALL_K])


def _with_far_queries(own: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Half the sample as it is, half moved to cosine ~FAR_QUERY_COSINE of itself (a text query lands
    between image clusters, not on an image: the graph's hard case)."""
    far = own[1::2]
    noise = rng.normal(size=far.shape).astype(np.float32)
    noise -= (noise * far).sum(axis=1, keepdims=True) * far  # orthogonal to the vector it moves
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    sine = np.sqrt(1.0 - FAR_QUERY_COSINE**2)
    queries = own.copy()
    queries[1::2] = FAR_QUERY_COSINE * far + sine * noise
    return queries
