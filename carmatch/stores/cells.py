"""Cell search (an inverted file, IVF): the collection split into cells around k-means centres.

A query scores every centre, scans the rows of the ``probes`` nearest cells with exact float32
cosine, and keeps the best k: no graph walk, so a query far from every image (a text query sits
at cosine ~0.25 from the images it describes, between clusters, where hnswlib needs ef 512-1024)
costs the same as one lying on an image. ``probes`` is measured per collection like hnswlib's ef
(:func:`carmatch.stores.tuning.choose_width`). The centres and each label's cell are saved with the
generation (``cells.npy``, ``cell_of.npy``); rows appended later are assigned on arrival.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from carmatch.stores.rows import BLOCK_ROWS, VectorRows

log = logging.getLogger(__name__)

CENTRES_FILE = "cells.npy"
CELL_OF_FILE = "cell_of.npy"
CELLS_PER_SQRT = 4  # cells = 4 * sqrt(rows): about 80 rows a cell at 100k, 250 at 1M
TRAIN_ROWS_PER_CELL = 16  # k-means learns the centres from this many sampled rows per cell
TRAIN_ITERATIONS = 8
REGROUP_FRACTION = 0.05  # appended rows kept aside until they are this fraction of the grouped ones


def cell_count(rows: int) -> int:
    """How many cells a collection of ``rows`` gets."""
    return max(1, min(rows, int(CELLS_PER_SQRT * np.sqrt(rows))))


def train_centres(rows: VectorRows, labels: np.ndarray, cells: int, seed: int = 0) -> np.ndarray:
    """Unit k-means (spherical) centres learnt from a sample of ``labels``' rows."""
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(labels, size=min(len(labels), cells * TRAIN_ROWS_PER_CELL), replace=False))
    sample = rows[take]
    centres = sample[rng.choice(len(sample), size=cells, replace=False)].copy()
    for _ in range(TRAIN_ITERATIONS):
        nearest = np.argmax(sample @ centres.T, axis=1)
        sums = np.zeros_like(centres)
        np.add.at(sums, nearest, sample)
        empty = np.bincount(nearest, minlength=cells) == 0
        sums[empty] = sample[rng.choice(len(sample), size=int(empty.sum()))]  # a lost centre restarts on a row
        centres = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return centres.astype(np.float32)


def assign(centres: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The nearest centre of each row (int32)."""
    out = np.empty(len(rows), dtype=np.int32)
    for start in range(0, len(rows), BLOCK_ROWS // 4):
        block = np.asarray(rows[start : start + BLOCK_ROWS // 4])
        out[start : start + len(block)] = np.argmax(block @ centres.T, axis=1)
    return out


class Cells:
    """Centres, the cell of every label, and the labels grouped by cell for scanning."""

    def __init__(self, centres: np.ndarray, cell_of: np.ndarray):
        self.centres = np.ascontiguousarray(centres, dtype=np.float32)
        self.cell_of = np.asarray(cell_of, dtype=np.int32)
        self._group()

    @classmethod
    def build(cls, rows: VectorRows, alive: np.ndarray, seed: int = 0) -> Cells:
        """Cells learnt from the live rows; every label (dead ones too) gets its nearest cell."""
        live = np.flatnonzero(alive)
        centres = train_centres(rows, live, cell_count(len(live)), seed)
        cell_of = np.empty(len(rows), dtype=np.int32)
        for start, block in rows.blocks():
            cell_of[start : start + len(block)] = assign(centres, block)
        rows.release()
        log.info("Grouped %d vectors into %d cells", len(live), len(centres))
        return cls(centres, cell_of)

    @classmethod
    def load(cls, folder: Path, labels: int) -> Cells:
        """The cells a generation saved for its first ``labels`` labels."""
        centres = np.load(folder / CENTRES_FILE)
        cell_of = np.load(folder / CELL_OF_FILE)
        if centres.ndim != 2 or cell_of.shape != (labels,) or (len(cell_of) and cell_of.max() >= len(centres)):
            raise ValueError("cells do not match the generation")
        return cls(centres, cell_of)

    def save(self, folder: Path) -> None:
        """Write the centres and every label's cell into a generation folder, fsynced (the folder is new)."""
        for name, array in ((CENTRES_FILE, self.centres), (CELL_OF_FILE, self.cell_of)):
            with open(folder / name, "wb") as fh:
                np.save(fh, array)
                fh.flush()
                os.fsync(fh.fileno())

    def __len__(self) -> int:
        return len(self.centres)

    @property
    def labels(self) -> int:
        """Labels that have a cell."""
        return len(self.cell_of)

    def _group(self) -> None:
        """Labels sorted by cell (``order``) with each cell's start in ``starts``; none kept aside."""
        self._order = np.argsort(self.cell_of, kind="stable").astype(np.int64)
        self._starts = np.concatenate([[0], np.cumsum(np.bincount(self.cell_of, minlength=len(self.centres)))])
        self._grouped = len(self.cell_of)

    def append(self, rows: np.ndarray) -> None:
        """Give appended rows (the next labels) their cells; regroup once they are many."""
        self.cell_of = np.concatenate([self.cell_of, assign(self.centres, rows)])
        if len(self.cell_of) - self._grouped > REGROUP_FRACTION * max(self._grouped, 1):
            self._group()

    def remap(self, kept: np.ndarray) -> None:
        """Labels renumbered to ``kept`` (the old labels, in their new order)."""
        self.cell_of = self.cell_of[kept]
        self._group()

    def candidates(self, query: np.ndarray, probes: int) -> np.ndarray:
        """Labels in the ``probes`` cells whose centres are nearest ``query`` (dead ones too)."""
        probes = min(probes, len(self.centres))
        scores = np.vecdot(self.centres, query)  # one thread: BLAS's threads wait on a busy machine
        chosen = np.argpartition(-scores, probes - 1)[:probes] if probes < len(scores) else np.arange(len(scores))
        parts = [self._order[self._starts[c] : self._starts[c + 1]] for c in chosen]
        if self._grouped < len(self.cell_of):  # appended since the last grouping: few, checked one by one
            tail = self.cell_of[self._grouped :]
            parts.append(self._grouped + np.flatnonzero(np.isin(tail, chosen)))
        return np.concatenate(parts)

    def top(self, rows: VectorRows, query: np.ndarray, probes: int, k: int, mask: np.ndarray) -> np.ndarray:
        """Labels of the best ``k`` rows allowed by ``mask`` in the ``probes`` nearest cells, best first."""
        labels = np.sort(self.candidates(query, probes))  # in file order: fewer pages and cache lines touched
        labels = labels[mask[labels]]
        if len(labels) == 0:
            return labels
        scores = np.vecdot(rows[labels], query)
        best = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        return labels[best[np.argsort(-scores[best], kind="stable")]]

    def answers(self, rows: VectorRows, alive: np.ndarray, probes: int, queries: np.ndarray, k: int) -> np.ndarray:
        """Labels of the ``k`` best live rows for each query (-1 where fewer), for measuring recall."""
        out = np.full((len(queries), k), -1, dtype=np.int64)
        for row, query in enumerate(queries):
            found = self.top(rows, query, probes, k, alive)
            out[row, : len(found)] = found
        return out
