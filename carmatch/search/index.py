"""Vector index: hnswlib cosine search over unit vectors, keyed by image id, saved atomically.

Small collections are searched exactly with numpy (faster there and always exact); above
``exact_max`` live vectors the hnswlib graph answers. :class:`~carmatch.search.hnsw_store.IndexStore`
saves it as generations swapped in atomically.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from carmatch.atomic import atomic_open, fsync_dir, fsync_file, write_bytes
from carmatch.catalog import now_iso
from carmatch.errors import IndexMissingError, InvalidInputError, ModelMismatchError
from carmatch.search.tuning import choose_ef, needs_measuring
from carmatch.search.vectors import unit_rows, unit_rows_for

log = logging.getLogger(__name__)

INDEX_FORMAT_VERSION = 1
CURRENT_FILE = "CURRENT"
REBUILD_HINT = ".venv/bin/carmatch index rebuild"
STAGING_PREFIX = ".staging-"


@dataclass
class IndexManifest:
    """What built an index: recorded beside it and checked on load."""

    model_key: str
    model: str
    pretrained: str
    weights_hash: str
    dim: int
    count: int = 0
    created_at: str = field(default_factory=now_iso)
    format_version: int = INDEX_FORMAT_VERSION
    space: str = "cosine"
    ef_search: int = 0  # hnswlib ef measured on this collection (carmatch.search.tuning); 0 = not yet
    ef_recall: float = 0.0  # recall@10 it reached
    ef_count: int = 0  # live vectors when it was measured

    def refuse_other_model(self, expected_model_key: str | None, built: str) -> None:
        """ModelMismatchError when ``built`` (e.g. "The search index") was made by another model than expected."""
        if expected_model_key is not None and self.model_key != expected_model_key:
            raise ModelMismatchError(
                f"{built} was built with model {self.model} ({self.pretrained}, weights "
                f"{self.weights_hash[:12]}), but the active model is {expected_model_key}. "
                f"Embeddings from different models cannot be compared. Rebuild the index: {REBUILD_HINT}"
            )


class VectorIndex:
    """Nearest-neighbour search over image embeddings, exact when small, hnswlib when large."""

    filter_fields: tuple[str, ...] = ()  # no attributes beside the vectors: filters arrive as ``allowed`` ids

    def __init__(
        self,
        manifest: IndexManifest,
        exact_max: int = 40_000,
        m: int = 16,
        ef_construction: int = 200,
        ef_search: int = 0,  # 0: the smallest ef measured to reach recall@10 >= 0.99 (tuning.choose_ef)
    ):
        self.manifest = manifest
        self.dim = manifest.dim
        self.exact_max = exact_max
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self._ids: list[str] = []
        self._labels: dict[str, int] = {}
        self._vectors = np.zeros((0, self.dim), dtype=np.float32)
        self._alive = np.zeros(0, dtype=bool)
        self._hnsw: object | None = None  # hnswlib.Index, built lazily
        self._hnsw_count = 0  # how many labels the graph holds

    # -- contents ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._alive.sum())

    def __contains__(self, image_id: object) -> bool:
        label = self._labels.get(image_id) if isinstance(image_id, str) else None
        return label is not None and bool(self._alive[label])

    @property
    def ids(self) -> list[str]:
        """Ids of the live vectors, in insertion order."""
        return [i for i, alive in zip(self._ids, self._alive) if alive]

    @property
    def uses_hnsw(self) -> bool:
        """True when searches go through the hnswlib graph rather than exact numpy."""
        return len(self) > self.exact_max

    @property
    def graph_built(self) -> bool:
        """True once the hnswlib graph exists in memory (an index searched only exactly never builds one)."""
        return self._hnsw is not None

    def add(self, image_ids: Sequence[str], vectors: np.ndarray) -> int:
        """Add or replace vectors for ``image_ids``; returns how many ids were new."""
        if len(image_ids) == 0:
            return 0
        vectors = unit_rows_for(len(image_ids), self.dim, vectors)
        new_ids, new_rows = [], []
        for image_id, vec in zip(image_ids, vectors):
            label = self._labels.get(image_id)
            if label is None:
                new_ids.append(image_id)
                new_rows.append(vec)
            else:
                self._vectors[label] = vec
                self._alive[label] = True
                self._hnsw_update(label, vec)
        if new_ids:
            start = len(self._ids)
            self._ids.extend(new_ids)
            for offset, image_id in enumerate(new_ids):
                self._labels[image_id] = start + offset
            self._vectors = np.concatenate([self._vectors, np.stack(new_rows)], axis=0)
            self._alive = np.concatenate([self._alive, np.ones(len(new_ids), dtype=bool)])
            if self._hnsw is not None:
                self._hnsw_add_new()
        self.manifest.count = len(self)
        return len(new_ids)

    def remove(self, image_ids: Iterable[str]) -> int:
        """Remove ids from search results; returns how many were present."""
        removed = 0
        for image_id in image_ids:
            label = self._labels.get(image_id)
            if label is not None and self._alive[label]:
                self._alive[label] = False
                if self._hnsw is not None and label < self._hnsw_count:
                    self._hnsw.mark_deleted(label)  # type: ignore[attr-defined]
                removed += 1
        self.manifest.count = len(self)
        return removed

    def vector(self, image_id: str) -> np.ndarray:
        """The stored unit vector of one image."""
        if image_id not in self:
            raise InvalidInputError(f"{image_id} is not in the index")
        return self._vectors[self._labels[image_id]].copy()

    # -- hnswlib graph ----------------------------------------------------------------------
    def _ensure_hnsw(self) -> object:
        if self._hnsw is None:
            import hnswlib

            graph = hnswlib.Index(space="cosine", dim=self.dim)
            capacity = max(1024, int(len(self._ids) * 1.25))
            graph.init_index(max_elements=capacity, ef_construction=self.ef_construction, M=self.m)
            graph.set_num_threads(max(1, os.cpu_count() or 1))
            if self._ids:
                graph.add_items(self._vectors, np.arange(len(self._ids)))
                for label in np.flatnonzero(~self._alive):
                    graph.mark_deleted(int(label))
            self._hnsw = graph
            self._hnsw_count = len(self._ids)
        return self._hnsw

    def search_ef(self) -> int:
        """The configured ef, else the one measured on this collection (measured again when stale)."""
        if self.ef_search > 0:
            return self.ef_search
        manifest = self.manifest
        if needs_measuring(manifest.ef_search, manifest.ef_count, len(self)):
            graph = self._ensure_hnsw()
            manifest.ef_search, manifest.ef_recall = choose_ef(graph, self._vectors, self._alive)
            manifest.ef_count = len(self)
        return manifest.ef_search

    def _hnsw_add_new(self) -> None:
        graph = self._hnsw
        assert graph is not None
        start, end = self._hnsw_count, len(self._ids)
        if end > graph.get_max_elements():  # type: ignore[attr-defined]
            graph.resize_index(max(end, int(graph.get_max_elements() * 1.5)))  # type: ignore[attr-defined]
        graph.add_items(self._vectors[start:end], np.arange(start, end))  # type: ignore[attr-defined]
        self._hnsw_count = end

    def _hnsw_update(self, label: int, vec: np.ndarray) -> None:
        if self._hnsw is None or label >= self._hnsw_count:
            return
        try:
            self._hnsw.unmark_deleted(label)  # type: ignore[attr-defined]
        except RuntimeError:
            pass  # label was not deleted
        self._hnsw.add_items(vec[None, :], np.array([label]))  # type: ignore[attr-defined]

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
        live = int(mask.sum())
        if live == 0:
            return []
        k = min(k, live)
        if live <= self.exact_max or not self.uses_hnsw:
            return self._exact(q, k, mask)
        return self._approximate(q, k, mask if allowed is not None else None)

    def search_exact(self, query: np.ndarray, k: int = 10) -> list[tuple[str, float]]:
        """Brute-force search over every live vector (ground truth for recall)."""
        q = unit_rows(query)[0]
        k = min(k, len(self))
        return self._exact(q, k, self._alive) if k > 0 else []

    def _exact(self, q: np.ndarray, k: int, mask: np.ndarray) -> list[tuple[str, float]]:
        scores = self._vectors @ q  # one matrix-vector product over every row, no copies
        if not mask.all():
            scores = np.where(mask, scores, -np.inf)
        if k < len(scores):
            top = np.argpartition(-scores, k - 1)[:k]
        else:
            top = np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self._ids[t], float(scores[t])) for t in top if mask[t]]

    def _approximate(self, q: np.ndarray, k: int, mask: np.ndarray | None) -> list[tuple[str, float]]:
        graph = self._ensure_hnsw()
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

    # -- persistence ------------------------------------------------------------------------
    def save_to(self, folder: Path) -> None:
        """Write the index files into an (empty) folder, fsynced."""
        folder.mkdir(parents=True, exist_ok=True)
        self.manifest.count = len(self)
        live = np.flatnonzero(self._alive)
        ids = [self._ids[i] for i in live]
        write_bytes(folder / "ids.json", json.dumps(ids).encode())
        with atomic_open(folder / "vectors.npy", "wb") as fh:
            np.save(fh, self._vectors[live])
        if len(live) > self.exact_max:
            compact = VectorIndex(self.manifest, self.exact_max, self.m, self.ef_construction, self.ef_search)
            compact._ids = ids
            compact._labels = {i: n for n, i in enumerate(ids)}
            compact._vectors = self._vectors[live]
            compact._alive = np.ones(len(ids), dtype=bool)
            owner = self if self._hnsw is not None and len(live) == len(self._ids) else compact
            graph = owner._ensure_hnsw()
            graph.save_index(str(folder / "hnsw.bin"))  # type: ignore[attr-defined]
            fsync_file(folder / "hnsw.bin")  # hnswlib writes without fsync: flush it before CURRENT can point here
            owner.search_ef()  # measured on the saved graph (or re-checked) before the manifest records it
        write_bytes(folder / "manifest.json", json.dumps(asdict(self.manifest), indent=2).encode())
        fsync_dir(folder)

    @classmethod
    def load_from(
        cls,
        folder: Path,
        exact_max: int = 40_000,
        m: int = 16,
        ef_construction: int = 200,
        ef_search: int = 0,
    ) -> VectorIndex:
        """Read an index written by :meth:`save_to`."""
        try:
            manifest = IndexManifest(**json.loads((folder / "manifest.json").read_text()))
            ids = json.loads((folder / "ids.json").read_text())
            vectors = np.load(folder / "vectors.npy")
        except (OSError, ValueError, TypeError) as exc:
            raise IndexMissingError(f"The index at {folder} is unreadable ({exc}). Rebuild it: {REBUILD_HINT}") from exc
        if manifest.format_version != INDEX_FORMAT_VERSION or vectors.shape != (len(ids), manifest.dim):
            raise IndexMissingError(f"The index at {folder} is from another format. Rebuild it: {REBUILD_HINT}")
        index = cls(manifest, exact_max, m, ef_construction, ef_search)
        index._ids = list(ids)
        index._labels = {i: n for n, i in enumerate(ids)}
        index._vectors = vectors.astype(np.float32)
        index._alive = np.ones(len(ids), dtype=bool)
        graph_file = folder / "hnsw.bin"
        if graph_file.exists() and len(ids) > exact_max:
            import hnswlib

            graph = hnswlib.Index(space="cosine", dim=manifest.dim)
            graph.load_index(str(graph_file), max_elements=max(1024, int(len(ids) * 1.25)))
            graph.set_num_threads(max(1, os.cpu_count() or 1))
            index._hnsw = graph
            index._hnsw_count = len(ids)
        return index
