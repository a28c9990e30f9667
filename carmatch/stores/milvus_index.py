"""One Milvus collection as a carmatch index: upserts, deletes and filtered searches go straight to Milvus.

Made by :class:`~carmatch.stores.milvus_store.MilvusStore` (``load`` or ``new_index``). The filter
attributes beside each vector follow the catalog: before a filtered search the rows whose caption
history moved since the collection last looked are re-read (:meth:`MilvusIndex.sync_attributes`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from carmatch.embedding.vectors import unit_rows, unit_rows_for
from carmatch.errors import InvalidInputError
from carmatch.stores.index import IndexManifest
from carmatch.stores.store import SCALAR_FILTER_FIELDS

if TYPE_CHECKING:
    from carmatch.stores.milvus_store import MilvusStore

SYNCED_PROPERTY = "carmatch.history_synced"  # caption-history row up to which attributes are current
WRITE_BATCH = 1_000  # rows per upsert
READ_BATCH = 10_000  # rows per query-iterator page


class MilvusIndex:
    """One collection of a :class:`MilvusStore`: writes go straight to Milvus."""

    filter_fields: tuple[str, ...] = SCALAR_FILTER_FIELDS

    def __init__(self, store: MilvusStore, collection: str, manifest: IndexManifest):
        self.store = store
        self.collection = collection
        self.manifest = manifest
        self.dim = manifest.dim
        self._sync_lock = threading.Lock()

    def _call(self, method: str, **kwargs: Any) -> Any:
        return self.store._call(method, collection_name=self.collection, **kwargs)

    # -- contents ---------------------------------------------------------------------------
    def __len__(self) -> int:
        count = self.store._count(self.collection)
        self.manifest.count = count
        return count

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, str) and bool(self._existing([image_id]))

    @property
    def ids(self) -> list[str]:
        """Every id in the collection."""
        iterator = self.store._call(
            "query_iterator", collection_name=self.collection, batch_size=READ_BATCH, filter="", output_fields=["id"]
        )
        found: list[str] = []
        try:
            while batch := iterator.next():
                found.extend(row["id"] for row in batch)
        finally:
            iterator.close()
        return found

    def _existing(self, image_ids: Sequence[str], **read: Any) -> set[str]:
        """The ids among ``image_ids`` the collection holds (at Strong, the store default, unless ``read`` says)."""
        found: set[str] = set()
        for start in range(0, len(image_ids), WRITE_BATCH):
            chunk = list(image_ids[start : start + WRITE_BATCH])
            rows = self._call("query", filter=f"id in {json.dumps(chunk)}", output_fields=["id"], **read)
            found.update(row["id"] for row in rows)
        return found

    def add(self, image_ids: Sequence[str], vectors: np.ndarray) -> int:
        """Upsert vectors (with their filter attributes) for ``image_ids``; returns how many ids were new."""
        if len(image_ids) == 0:
            return 0
        vectors = unit_rows_for(len(image_ids), self.dim, vectors)
        # Session: this client's earlier upserts count without Strong's wait per batch (0.4 s each on a
        # server, minutes over a million-row copy); the figure is a report, the upsert is exact anyway.
        before = self._existing(image_ids, consistency_level="Session")
        self._upsert(list(image_ids), vectors)
        return len(set(image_ids) - before)

    def _upsert(self, image_ids: list[str], vectors: np.ndarray) -> None:
        for start in range(0, len(image_ids), WRITE_BATCH):
            chunk = image_ids[start : start + WRITE_BATCH]
            attrs = self.store.attributes(chunk)
            blank = dict.fromkeys(SCALAR_FILTER_FIELDS, "")
            rows = [
                {"id": image_id, "vector": vec.tolist(), **blank, **attrs.get(image_id, {})}
                for image_id, vec in zip(chunk, vectors[start : start + WRITE_BATCH])
            ]
            self._call("upsert", data=rows)

    def remove(self, image_ids: Iterable[str]) -> int:
        """Delete ids from the collection; returns how many were present."""
        present = sorted(self._existing(list(dict.fromkeys(image_ids))))
        for start in range(0, len(present), WRITE_BATCH):
            self._call("delete", ids=present[start : start + WRITE_BATCH])
        return len(present)

    def vector(self, image_id: str) -> np.ndarray:
        """The stored unit vector of one image."""
        rows = self._call("get", ids=[image_id], output_fields=["vector"])
        if not rows:
            raise InvalidInputError(f"{image_id} is not in the index")
        return np.asarray(rows[0]["vector"], dtype=np.float32)

    def discard(self) -> None:
        """Drop this collection when it is not the live one (a build that failed or was cancelled)."""
        if self.store.current_generation() != self.collection:
            self._call("drop_collection")

    # -- filters follow the catalog -----------------------------------------------------------
    def sync_attributes(self) -> int:
        """Re-read the filter attributes of images whose caption history moved; returns how many."""
        if self.store.changes is None:
            return 0
        with self._sync_lock:
            described = self.store._call("describe_collection", collection_name=self.collection)
            synced = int(described.get("properties", {}).get(SYNCED_PROPERTY, 0))
            newest, changed = self.store.changes(synced)
            if newest == synced:
                return 0
            rows = self._call("get", ids=changed, output_fields=["id", "vector"]) if changed else []
            if rows:
                ids = [row["id"] for row in rows]
                self._upsert(ids, np.asarray([row["vector"] for row in rows], dtype=np.float32))
            self.store._call(
                "alter_collection_properties",
                collection_name=self.collection,
                properties={SYNCED_PROPERTY: str(newest)},
            )
            return len(rows)

    # -- search -----------------------------------------------------------------------------
    def search(
        self,
        query: np.ndarray,
        k: int = 10,
        allowed: Collection[str] | None = None,
        where: Mapping[str, str] | None = None,
    ) -> list[tuple[str, float]]:
        """The ``k`` nearest images as (id, cosine similarity), best first, filtered inside Milvus."""
        if k <= 0 or (allowed is not None and not allowed):
            return []
        q = unit_rows(query)[0]
        if q.shape[0] != self.dim:
            raise InvalidInputError(f"Query has {q.shape[0]} dimensions, the index has {self.dim}")
        clauses = []
        if where:
            self.sync_attributes()
            for key, value in where.items():
                if key not in self.filter_fields:
                    raise InvalidInputError(f"The Milvus store cannot filter on {key!r} inside the store")
                clauses.append(f"{key} == {json.dumps(value)}")
        if allowed is not None:
            clauses.append(f"id in {json.dumps(sorted(allowed))}")
        hits = self._call(
            "search",
            data=[q.tolist()],
            limit=int(k),
            filter=" and ".join(clauses),  # the primary key comes back with every hit: no output fields to fetch
            search_params={"metric_type": "COSINE", "params": {"ef": max(self.store.ef_search, int(k))}},
            consistency_level="Session",  # sees this client's upserts (attributes synced just above) at no wait
        )
        return [(str(hit["id"]), float(hit["distance"])) for hit in hits[0]] if hits else []
