"""Vector index: cosine search over unit vectors, keyed by image id, saved atomically.

Small collections are searched exactly with numpy (faster there and always exact); above
``exact_max`` live vectors an approximate index answers: cells (``ann="cells"``, the default,
:mod:`carmatch.stores.cells`: exact float32 scores over the nearest cells, as fast for a text query
as for a photo) or the hnswlib graph (``ann="hnsw"``, fast for photos, slow for text queries).
The vectors are kept once: a memory-mapped
matrix (:class:`~carmatch.stores.rows.VectorRows`) that exact search reads, and that stays out of
memory while the graph (which holds its own copy) answers. :mod:`carmatch.stores.index_files` writes
and reads it; :class:`~carmatch.stores.hnsw_store.IndexStore` keeps generations swapped in atomically.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from carmatch.config import ANN_METHODS
from carmatch.embedding.vectors import unit_rows, unit_rows_for
from carmatch.errors import InvalidInputError
from carmatch.stores.cells import Cells, cell_count
from carmatch.stores.manifest import (  # noqa: F401 -- re-exported: callers import them from here
    INDEX_FORMAT_VERSION,
    READABLE_FORMATS,
    REBUILD_HINT,
    IndexManifest,
    SavedAs,
)
from carmatch.stores.rows import BLOCK_ROWS, VectorRows
from carmatch.stores.tuning import PROBE_CANDIDATES, RECALL_K, choose_ef, choose_width, needs_measuring

log = logging.getLogger(__name__)

CURRENT_FILE = "CURRENT"
STAGING_PREFIX = ".staging-"


class VectorIndex:
    """Nearest-neighbour search over image embeddings, exact when small, cells or hnswlib when large."""

    filter_fields: tuple[str, ...] = ()  # no attributes beside the vectors: filters arrive as ``allowed`` ids

    def __init__(
        self,
        manifest: IndexManifest,
        exact_max: int = 40_000,
        m: int = 16,
        ef_construction: int = 200,
        ef_search: int = 0,  # 0: the smallest ef measured to reach recall@10 >= 0.99 (tuning.choose_ef)
        ann: str = "cells",  # above exact_max: "cells" (carmatch.stores.cells) or "hnsw"
        probes: int = 0,  # cells scanned; 0: the smallest count measured to reach recall@10 >= 0.99
    ):
        if ann not in ANN_METHODS:
            raise InvalidInputError(f"Unknown search method {ann!r}; use one of {', '.join(ANN_METHODS)}")
        self.manifest = manifest
        self.dim = manifest.dim
        self.exact_max = exact_max
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.ann = ann
        self.probes = probes
        self._cells: Cells | None = None  # built or loaded when a search first needs them
        self.cells_folder: Path | None = None  # a generation holding cells.npy + cell_of.npy for its first labels
        self.cells_file_labels = 0
        self._ids: list[str] = []  # by label; "" for a label no longer live that a saved file still holds
        self._labels: dict[str, int] = {}
        self._rows = VectorRows(self.dim)
        self._alive = np.zeros(0, dtype=bool)
        self._hnsw: object | None = None  # hnswlib.Index, built or loaded when a search first needs it
        self._hnsw_count = 0  # labels below this the graph has seen (added, or left out as dead)
        self.graph_file: Path | None = None  # a saved graph over the first graph_file_labels labels
        self.graph_file_labels = 0
        self.saved: SavedAs | None = None  # set by the store after a save or load

    # -- contents ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(np.count_nonzero(self._alive))  # 0.04 ms at 1M rows; .sum() took 0.3 ms, twice per search

    def __contains__(self, image_id: object) -> bool:
        label = self._labels.get(image_id) if isinstance(image_id, str) else None
        return label is not None and bool(self._alive[label])

    @property
    def ids(self) -> list[str]:
        """Ids of the live vectors, in insertion order."""
        return [i for i, alive in zip(self._ids, self._alive) if alive]

    @property
    def approximate(self) -> bool:
        """True when searches go through cells or the graph rather than exact numpy."""
        return len(self) > self.exact_max

    @property
    def uses_hnsw(self) -> bool:
        """True when searches go through the hnswlib graph."""
        return self.approximate and self.ann == "hnsw"

    @property
    def uses_cells(self) -> bool:
        """True when searches scan the nearest cells (:mod:`carmatch.stores.cells`)."""
        return self.approximate and self.ann == "cells"

    @property
    def graph_built(self) -> bool:
        """True once the hnswlib graph exists in memory (an index searched only exactly never builds one)."""
        return self._hnsw is not None

    @property
    def label_count(self) -> int:
        """Labels held, live or not (a label is never reused before the next compaction)."""
        return len(self._ids)

    def add(self, image_ids: Sequence[str], vectors: np.ndarray) -> int:
        """Add or replace vectors for ``image_ids``; returns how many ids were new.

        A replaced vector gets a new label (the old one is marked dead), so saved files are only appended to.
        """
        if len(image_ids) == 0:
            return 0
        vectors = unit_rows_for(len(image_ids), self.dim, vectors)
        last = {image_id: n for n, image_id in enumerate(image_ids)}  # an id twice: its last vector wins
        fresh, keep = 0, []
        for image_id, n in last.items():
            label = self._labels.get(image_id)
            if label is None:
                fresh += 1
            elif self._alive[label]:
                if np.array_equal(self._rows[[label]][0], vectors[n]):
                    continue
                self._kill(label)
            keep.append(n)
        if keep:
            self.append_rows([image_ids[n] for n in keep], vectors[keep])
        return fresh

    def append_rows(self, image_ids: Sequence[str], rows: np.ndarray) -> None:
        """Give each id the next label and its (unit) row; ids must not be live already."""
        start = len(self._ids)
        self._ids.extend(image_ids)
        self._labels.update({image_id: start + offset for offset, image_id in enumerate(image_ids)})
        self._rows.append(rows)
        self._alive = np.concatenate([self._alive, np.ones(len(image_ids), dtype=bool)])
        if self._hnsw is not None:
            self._hnsw_add_new()
        if self._cells is not None:
            self._cells.append(rows)
        self.manifest.count = len(self)

    def remove(self, image_ids: Iterable[str]) -> int:
        """Remove ids from search results; returns how many were present."""
        removed = 0
        for image_id in image_ids:
            label = self._labels.get(image_id)
            if label is not None and self._alive[label]:
                self._kill(label)
                removed += 1
        self.manifest.count = len(self)
        return removed

    def kill_labels(self, labels: Iterable[int]) -> None:
        """Mark labels dead (a saved segment's removals)."""
        for label in labels:
            if self._alive[label]:
                self._kill(label)
        self.manifest.count = len(self)

    def _kill(self, label: int) -> None:
        self._alive[label] = False
        if self._hnsw is not None and label < self._hnsw_count:
            self._mark_deleted(self._hnsw, label)

    def vector(self, image_id: str) -> np.ndarray:
        """The stored unit vector of one image."""
        if image_id not in self:
            raise InvalidInputError(f"{image_id} is not in the index")
        return self._rows[[self._labels[image_id]]][0]

    @property
    def rows(self) -> VectorRows:
        """Every label's row (dead ones too), for writing the index out."""
        return self._rows

    @property
    def alive(self) -> np.ndarray:
        """Which labels are live."""
        return self._alive

    def label_ids(self) -> list[str]:
        """The id of each label ("" for a dead one)."""
        return self._ids

    def rebase(self, rows: VectorRows, ids: list[str] | None = None, kept: np.ndarray | None = None) -> None:
        """Take ``rows`` (the saved matrix, mapped) as the vectors; with ``ids``, the labels were compacted to them.

        ``kept``: the old labels of the compacted ones, in order (the cells follow them).
        """
        if ids is not None:
            self._ids = list(ids)
            self._labels = dict(zip(ids, range(len(ids))))
            self._labels.pop("", None)  # dead labels
            self._alive = np.array([bool(i) for i in ids], dtype=bool)
            self._hnsw, self._hnsw_count, self.graph_file = None, 0, None
            if self._cells is not None and kept is not None:
                self._cells.remap(kept)
            else:
                self._cells = None
            self.cells_folder = None
        self._rows = rows
        self.manifest.count = len(self)

    # -- cells ------------------------------------------------------------------------------
    @property
    def cells_built(self) -> bool:
        """True once the cells exist in memory."""
        return self._cells is not None

    @property
    def cells(self) -> Cells:
        """The cells: loaded from the saved generation or learnt from the rows on first use."""
        if self._cells is None:
            cells = None
            if self.cells_folder is not None:
                try:
                    cells = Cells.load(self.cells_folder, self.cells_file_labels)
                except (OSError, ValueError) as exc:  # pruned by a newer save meanwhile: learn them again
                    log.info("Saved cells in %s unreadable (%s); grouping the vectors again", self.cells_folder, exc)
            if cells is None or len(cells) < cell_count(len(self)) // 2:  # none yet, or the collection outgrew them
                cells = Cells.build(self._rows, self._alive)
            elif cells.labels < len(self._ids):
                cells.append(self._rows[np.arange(cells.labels, len(self._ids))])
            self._cells = cells
        return self._cells

    def search_probes(self) -> int:
        """The configured cells per query, else the count measured on this collection (measured again when stale)."""
        if self.probes > 0:
            return self.probes
        manifest = self.manifest
        if needs_measuring(manifest.probes, manifest.probe_count, len(self)):
            if self._cells is not None and len(self._cells) < cell_count(len(self)) // 2:
                self._cells = None  # grown past its cells: group again
            cells = self.cells
            manifest.probes, manifest.probe_recall = choose_width(
                lambda probes, queries: cells.answers(self._rows, self._alive, probes, queries, RECALL_K + 1),
                PROBE_CANDIDATES,
                self._rows,
                self._alive,
                what="cells probed",
            )
            manifest.probe_count = len(self)
        return manifest.probes

    def _cells_search(self, q: np.ndarray, k: int, mask: np.ndarray | None) -> list[tuple[str, float]]:
        cells = self.cells
        probes = max(1, self.search_probes())
        live = len(self)
        if mask is not None:  # a filter: scan more cells so as many allowed rows are seen, or all of them exactly
            allowed = int(np.count_nonzero(mask))
            probes = min(len(cells), int(np.ceil(probes * live / max(allowed, 1))))
            if live * probes / len(cells) >= allowed:
                return self._exact(q, k, mask)
        found = cells.top(self._rows, q, probes, k, self._alive if mask is None else mask)
        if len(found) < k:  # too few rows in the cells scanned: look at every one
            return self._exact(q, k, self._alive if mask is None else mask)
        scores = np.vecdot(self._rows[found], q)
        return [(self._ids[int(label)], float(score)) for label, score in zip(found, scores)]

    # -- hnswlib graph ----------------------------------------------------------------------
    def ensure_graph(self) -> object:
        """The hnswlib graph: loaded from the saved file or built from the rows on first use."""
        if self._hnsw is None:
            import hnswlib

            graph = hnswlib.Index(space="cosine", dim=self.dim)
            capacity = max(1024, int(len(self._ids) * 1.25))
            covered = 0
            if self.graph_file is not None:
                try:
                    graph.load_index(str(self.graph_file), max_elements=capacity)
                    covered = self.graph_file_labels
                except RuntimeError as exc:  # pruned by a newer save meanwhile: build it from the rows
                    log.info("Saved graph %s unreadable (%s); building it from the vectors", self.graph_file, exc)
                    graph = hnswlib.Index(space="cosine", dim=self.dim)
            if not covered:
                graph.init_index(max_elements=capacity, ef_construction=self.ef_construction, M=self.m)
            graph.set_num_threads(max(1, os.cpu_count() or 1))
            for label in np.flatnonzero(~self._alive[:covered]):
                self._mark_deleted(graph, int(label))
            self._hnsw, self._hnsw_count = graph, covered
            self._hnsw_add_new()
        return self._hnsw

    @staticmethod
    def _mark_deleted(graph: object, label: int) -> None:
        try:
            graph.mark_deleted(label)  # type: ignore[attr-defined]
        except RuntimeError:
            pass  # already deleted in the saved graph, or never added (dead before the graph was built)

    def search_ef(self) -> int:
        """The configured ef, else the one measured on this collection (measured again when stale)."""
        if self.ef_search > 0:
            return self.ef_search
        manifest = self.manifest
        if needs_measuring(manifest.ef_search, manifest.ef_count, len(self)):
            graph = self.ensure_graph()
            manifest.ef_search, manifest.ef_recall = choose_ef(graph, self._rows, self._alive)
            manifest.ef_count = len(self)
            self._rows.release()
        return manifest.ef_search

    def _hnsw_add_new(self) -> None:
        """Add the live labels the graph has not seen yet, block by block."""
        graph = self._hnsw
        assert graph is not None
        start, end = self._hnsw_count, len(self._ids)
        if end > graph.get_max_elements():  # type: ignore[attr-defined]
            graph.resize_index(max(end, int(graph.get_max_elements() * 1.5)))  # type: ignore[attr-defined]
        for first in range(start, end, BLOCK_ROWS):
            labels = np.arange(first, min(first + BLOCK_ROWS, end))
            labels = labels[self._alive[labels]]
            if len(labels):
                graph.add_items(self._rows[labels], labels)  # type: ignore[attr-defined]
        self._hnsw_count = end
        if end > start:
            self._rows.release()

    # -- search -----------------------------------------------------------------------------
    def search(
        self,
        query: np.ndarray,
        k: int = 10,
        allowed: Collection[str] | None = None,
        where: Mapping[str, str] | None = None,
    ) -> list[tuple[str, float]]:
        """The ``k`` nearest live images to ``query`` as (id, cosine similarity), best first.

        ``allowed`` restricts results to those ids; k results come back whenever k allowed
        images exist. ``where`` is refused: this index keeps no attributes (see filter_fields).
        """
        if where:
            raise InvalidInputError("The hnswlib index filters by id: pass allowed=catalog.filter_ids(where)")
        if k <= 0:
            return []
        q = unit_rows(query)[0]
        if q.shape[0] != self.dim:
            raise InvalidInputError(f"Query has {q.shape[0]} dimensions, the index has {self.dim}")
        mask = self._alive
        if allowed is not None:
            chosen = np.zeros(len(self._ids), dtype=bool)  # cost follows the filter's size, not the index's
            chosen[[label for i in allowed if (label := self._labels.get(i)) is not None]] = True
            mask = mask & chosen
        live = int(np.count_nonzero(mask))
        if live == 0:
            return []
        k = min(k, live)
        if live <= self.exact_max or not self.approximate:
            return self._exact(q, k, mask)
        if self.ann == "cells":
            return self._cells_search(q, k, mask if allowed is not None else None)
        return self._approximate(q, k, mask if allowed is not None else None)

    def search_exact(self, query: np.ndarray, k: int = 10) -> list[tuple[str, float]]:
        """Brute-force search over every live vector (ground truth for recall)."""
        q = unit_rows(query)[0]
        k = min(k, len(self))
        return self._exact(q, k, self._alive) if k > 0 else []

    def _exact(self, q: np.ndarray, k: int, mask: np.ndarray) -> list[tuple[str, float]]:
        labels = np.flatnonzero(mask)
        if self.uses_hnsw:  # the graph holds the resident copy: read just these rows, then hand their pages back
            parts = [self._rows[labels[s : s + BLOCK_ROWS]] @ q for s in range(0, len(labels), BLOCK_ROWS)]
            scores = np.concatenate(parts)
            self._rows.release()
        else:
            scores = self._rows.scores(q)[labels]  # one matrix-vector product over the mapped matrix
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self._ids[labels[t]], float(scores[t])) for t in top]

    def _approximate(self, q: np.ndarray, k: int, mask: np.ndarray | None) -> list[tuple[str, float]]:
        graph = self.ensure_graph()
        ef = max(self.search_ef(), k)
        filt = None
        if mask is not None:
            filt = lambda label: bool(mask[label])  # noqa: E731
        for _attempt in range(3):
            graph.set_ef(ef)  # type: ignore[attr-defined]
            try:
                labels, dists = graph.knn_query(q[None, :], k=k, filter=filt)  # type: ignore[attr-defined]
                return [(self._ids[int(lab)], float(1.0 - d)) for lab, d in zip(labels[0], dists[0])]
            except RuntimeError:
                ef *= 4  # too few candidates reached under a selective filter: widen the search
        log.info("hnswlib could not return %d results; falling back to exact search", k)
        return self._exact(q, k, mask if mask is not None else self._alive)
