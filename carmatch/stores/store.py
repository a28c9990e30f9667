"""The one vector-store interface: what search, ingest, delete, activation and rebuild rely on.

Two implementations: :class:`~carmatch.stores.hnsw_store.IndexStore` (hnswlib, embedded, the default)
and :class:`~carmatch.stores.milvus_store.MilvusStore` (Milvus Lite file, server or cluster).
:func:`~carmatch.stores.opening.open_store` picks one from the settings; nothing else names either.

A store holds *generations*: a complete index built by one model. Writers hold ``write_lock``,
load the current index (or start a new one beside it), change it, and :meth:`VectorStore.save`
makes it current atomically (a ``CURRENT`` file for hnswlib, a collection alias for Milvus).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from carmatch.catalog.schema import FILTER_KEYS, REVIEW_STATES
from carmatch.errors import InvalidInputError

if TYPE_CHECKING:
    from carmatch.stores.index import IndexManifest
    from carmatch.stores.write_lock import IndexWriteLock

# Filter keys a store may keep as scalar fields beside each vector (Milvus does; hnswlib filters by id).
SCALAR_FILTER_FIELDS = ("color", "body_type", "make", "viewpoint", "review_state")
MILVUS_EF_SEARCH = 128  # Milvus HNSW search ef when CARMATCH_HNSW_EF_SEARCH is unset (bench/store_bench.py)
_KEY_ALIASES = {"state": "review_state", "review": "review_state", "caption_source": "source"}

Attributes = Callable[[Sequence[str]], dict[str, dict[str, str]]]  # ids -> {id: {field: value}}


class SearchIndex(Protocol):
    """One generation of a store: vectors keyed by image id, searched by cosine similarity."""

    manifest: IndexManifest
    dim: int
    filter_fields: tuple[str, ...]  # ``where`` keys :meth:`search` filters on inside the store

    def __len__(self) -> int: ...
    def __contains__(self, image_id: object) -> bool: ...
    @property
    def ids(self) -> list[str]: ...
    def add(self, image_ids: Sequence[str], vectors: np.ndarray) -> int: ...
    def remove(self, image_ids: Iterable[str]) -> int: ...
    def vector(self, image_id: str) -> np.ndarray: ...
    def search(
        self,
        query: np.ndarray,
        k: int = 10,
        allowed: Collection[str] | None = None,
        where: Mapping[str, str] | None = None,
    ) -> list[tuple[str, float]]: ...


class VectorStore(Protocol):
    """Where generations live and which one is current."""

    kind: str  # "hnswlib" | "milvus"
    location: str  # a folder, a Milvus Lite file or a server URI
    write_lock: IndexWriteLock

    def exists(self) -> bool: ...
    def current_generation(self) -> str | None: ...
    def read_manifest(self) -> IndexManifest: ...
    def load(self, expected_model_key: str | None = None) -> SearchIndex: ...
    def new_index(self, manifest: IndexManifest) -> SearchIndex: ...
    def save(self, index: Any) -> str: ...
    def describe(self) -> dict[str, Any]: ...


def normalize_where(where: Mapping[str, str] | None) -> dict[str, str]:
    """``where`` with canonical keys and lower-case values; unknown keys or states raise InvalidInputError."""
    clean: dict[str, str] = {}
    for key, value in (where or {}).items():
        name = key.strip().lower()
        name = _KEY_ALIASES.get(name, name)
        if name not in FILTER_KEYS:
            raise InvalidInputError(f"Unknown filter {key!r}; filter on one of: {', '.join(FILTER_KEYS)}")
        text = str(value).strip().lower()
        if name == "review_state" and text not in REVIEW_STATES:
            raise InvalidInputError(f"Unknown review state {value!r}; use one of {REVIEW_STATES}")
        clean[name] = text
    return clean
