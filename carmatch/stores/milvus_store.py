"""Milvus as the vector store: Milvus Lite (one file), a standalone server or a cluster, one client.

Each generation is a collection ``PREFIX_g<time>_<hex>``: image id as primary key, the unit
embedding under an HNSW cosine index, and the filter attributes (:data:`SCALAR_FILTER_FIELDS`) as
scalar fields, so a filtered search is one Milvus search with a filter expression. The collection's
properties carry the manifest (the model fingerprint), checked on load like an hnswlib index's.
Searches go through the alias ``PREFIX``; a rebuild fills a new collection beside the live one and
:meth:`MilvusStore.save` switches the alias to it, then drops the old collection.

Attributes change in the catalog (captions, reviews); before a filtered search the index re-reads
the rows whose caption history moved since it last looked, so filters follow the catalog.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carmatch.catalog import now_iso
from carmatch.catalog.records import attr_value
from carmatch.errors import ConfigError, IndexMissingError, InvalidInputError, ModelMismatchError
from carmatch.stores.index import REBUILD_HINT, IndexManifest
from carmatch.stores.milvus_index import SYNCED_PROPERTY, MilvusIndex
from carmatch.stores.store import SCALAR_FILTER_FIELDS, Attributes
from carmatch.stores.write_lock import write_lock_for

if TYPE_CHECKING:
    from carmatch.catalog import Catalog

log = logging.getLogger(__name__)

MANIFEST_PROPERTY = "carmatch.manifest"
ID_MAX_CHARS = 128
VALUE_MAX_CHARS = 256
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
STALE_BUILD_SECONDS = 6 * 3600  # an unaliased collection this old belongs to no running build
# Counts, listings and lookups read at Strong consistency: on a Milvus server the default (Bounded) can
# miss writes of the last seconds, so a count right after a copy or a delete would be wrong. Strong waits
# for the next time tick (~0.4 s measured on a 2.3 standalone), so searches read at Session consistency
# (this client's upserts, no wait); a deleted image that still comes back for a moment from a server is
# dropped by the catalog lookup of the results.
STRONG = "Strong"
STRONG_READS = frozenset({"query", "get", "query_iterator"})
INDEX_POLL_SECONDS = 0.25

Changes = Callable[[int], tuple[int, list[str]]]


def catalog_attributes(catalog: Catalog) -> Attributes:
    """The scalar fields of each image as the catalog holds them (lower-case, "" when unset)."""

    def read(image_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        records = catalog.get_many(list(image_ids))
        out: dict[str, dict[str, str]] = {}
        for image_id, record in records.items():
            row = {key: _fits(attr_value(record.attributes, key) or "") for key in SCALAR_FILTER_FIELDS[:-1]}
            row["review_state"] = record.review_state
            out[image_id] = row
        return out

    return read


def _fits(value: str) -> str:
    """``value`` cut to the VARCHAR field's byte length (a runaway caption attribute cannot fail an upsert)."""
    return value.encode()[:VALUE_MAX_CHARS].decode(errors="ignore")


def _milvus_error(exc: Exception, uri: str) -> ConfigError:
    """An error from the Milvus client, phrased with the setting to fix."""
    text = str(exc)
    # pymilvus reports a refused login as "Fail connecting to server"; the gRPC status beneath says why
    cause = str(getattr(exc.__cause__, "details", lambda: "")() or "")
    if any(word in f"{text} {cause}".lower() for word in ("auth", "credential", "token", "password", "permission")):
        return ConfigError(
            f"Milvus at {uri} refused the credentials ({cause or text}).",
            hint="Set CARMATCH_MILVUS_TOKEN to 'user:password' or an API key.",
        )
    return ConfigError(
        f"Cannot use the Milvus store at {uri} ({text}).",
        hint="Check CARMATCH_MILVUS_URI (a Milvus Lite file path, or http://host:19530 for a server) "
        "or set CARMATCH_VECTOR_STORE=hnswlib.",
    )


class MilvusStore:
    """Generations of a carmatch index as Milvus collections behind one alias."""

    kind = "milvus"

    def __init__(
        self,
        uri: str,
        token: str = "",
        prefix: str = "carmatch",
        ef_search: int = 128,
        attributes: Attributes | None = None,
        changes: Changes | None = None,
        lock_key: Path | str | None = None,
        client: Any = None,
    ):
        self.location = uri
        self.is_server = "://" in uri  # http(s)://host:19530 (server, cluster, managed); else a Milvus Lite file
        self.alias = prefix
        self.ef_search = ef_search
        self.attributes: Attributes = attributes or (lambda ids: {})
        self.changes = changes
        self.write_lock = write_lock_for(lock_key if lock_key is not None else Path(uri).parent / f".{prefix}")
        self._client = client
        self._token = token
        self._client_lock = threading.Lock()

    # -- connection -------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The MilvusClient, connected on first use; a bad URI or token raises ConfigError."""
        with self._client_lock:
            if self._client is None:
                if not self.is_server:
                    Path(self.location).expanduser().parent.mkdir(parents=True, exist_ok=True)
                try:
                    from pymilvus import MilvusClient

                    self._client = MilvusClient(uri=self.location, token=self._token, timeout=10)
                except Exception as exc:  # pymilvus raises MilvusException and grpc errors alike
                    raise _milvus_error(exc, self.location) from exc
            return self._client

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One client call; its failures become a ConfigError naming the setting."""
        from pymilvus.exceptions import MilvusException

        if method in STRONG_READS:
            kwargs.setdefault("consistency_level", STRONG)
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except MilvusException as exc:
            raise _milvus_error(exc, self.location) from exc

    # -- generations ------------------------------------------------------------------------
    def current_generation(self) -> str | None:
        """The collection the alias points to, or None when no index exists yet."""
        for name in self._call("list_collections"):
            if name.startswith(f"{self.alias}_g") and self.alias in self._aliases_of(name):
                return str(name)
        return None

    def _aliases_of(self, collection: str) -> list[str]:
        listed = self._call("list_aliases", collection_name=collection)
        return list(listed.get("aliases", []) if isinstance(listed, dict) else listed)

    def exists(self) -> bool:
        """True when the alias names a collection."""
        return self.current_generation() is not None

    def read_manifest(self) -> IndexManifest:
        """The manifest of the live collection, with its current count."""
        gen = self.current_generation()
        if gen is None:
            raise IndexMissingError(
                f"No search index yet. Ingest images (.venv/bin/carmatch ingest DIR) or run {REBUILD_HINT}."
            )
        return self._manifest_of(gen)

    def _manifest_of(self, collection: str) -> IndexManifest:
        described = self._call("describe_collection", collection_name=collection)
        try:
            manifest = IndexManifest(**json.loads(described["properties"][MANIFEST_PROPERTY]))
        except (KeyError, ValueError, TypeError) as exc:
            raise IndexMissingError(
                f"The Milvus collection {collection} was not made by carmatch (no readable manifest). "
                f"Set CARMATCH_MILVUS_COLLECTION to another name, or rebuild: {REBUILD_HINT}"
            ) from exc
        dims = [f["params"].get("dim") for f in described["fields"] if f["name"] == "vector"]
        if dims and int(dims[0]) != manifest.dim:
            raise ConfigError(
                field="CARMATCH_MILVUS_COLLECTION",
                label="CARMATCH_MILVUS_COLLECTION",
                value=self.alias,
                reason=f"names collection {collection}, which holds {dims[0]}-d vectors while its manifest says "
                f"{manifest.dim}-d; set CARMATCH_MILVUS_COLLECTION to another name (nothing was changed)",
            )
        manifest.count = self._count(collection)
        return manifest

    def _count(self, collection: str) -> int:
        rows = self._call("query", collection_name=collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def load(self, expected_model_key: str | None = None) -> MilvusIndex:
        """The live collection as an index, refusing one built by another model or of another size."""
        manifest = self.read_manifest()
        try:
            manifest.refuse_other_model(expected_model_key, f"The Milvus collection {self.alias}")
        except ModelMismatchError as exc:
            raise ModelMismatchError(
                f"{exc} (Its vectors are {manifest.dim}-d. To keep it, set CARMATCH_MILVUS_COLLECTION to another "
                "name instead.)"
            ) from exc
        gen = self.current_generation()
        assert gen is not None
        self._call("load_collection", collection_name=gen)
        return MilvusIndex(self, gen, manifest)

    def new_index(self, manifest: IndexManifest) -> MilvusIndex:
        """A new, empty collection beside the live one (searched only after :meth:`save`)."""
        stamp = now_iso().replace(":", "").replace("-", "").replace(".", "").replace("+", "")
        name = f"{self.alias}_g{stamp}_{uuid.uuid4().hex[:8]}"
        synced = self.changes(0)[0] if self.changes is not None else 0
        self._create_collection(name, manifest, synced)
        manifest.count = 0
        return MilvusIndex(self, name, manifest)

    def _create_collection(self, name: str, manifest: IndexManifest, synced: int) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description="carmatch index")
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_MAX_CHARS)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=manifest.dim)
        for key in SCALAR_FILTER_FIELDS:
            schema.add_field(key, DataType.VARCHAR, max_length=VALUE_MAX_CHARS)
        index_params = self.client.prepare_index_params()
        index_params.add_index(
            field_name="vector",
            index_type="HNSW",
            metric_type="COSINE",
            params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION},
        )
        properties = {MANIFEST_PROPERTY: json.dumps(asdict(manifest)), SYNCED_PROPERTY: str(synced)}
        self._call(
            "create_collection",
            collection_name=name,
            schema=schema,
            index_params=index_params,
            properties=properties,
        )

    def save(self, index: Any) -> str:
        """Flush ``index`` and make its collection the live one (the alias switch); returns its name."""
        if not isinstance(index, MilvusIndex) or index.store is not self:
            raise InvalidInputError("A Milvus store saves only indexes it made (load or new_index).")
        with self.write_lock:
            previous = self.current_generation()
            if previous == index.collection and self.is_server:
                # a server logs each write before answering; a flush per ingest would only add seconds
                return index.collection
            self._call("flush", collection_name=index.collection)  # seals the segments the server indexes
            if previous != index.collection:
                self._wait_for_index(index.collection)
                if self.is_server:  # reload: served from the indexed segments only, none mid-handoff
                    self._call("release_collection", collection_name=index.collection)
                self._call("load_collection", collection_name=index.collection)
                if previous is None:
                    self._call("create_alias", collection_name=index.collection, alias=self.alias)
                else:
                    self._call("alter_alias", collection_name=index.collection, alias=self.alias)  # the swap
                    self._call("drop_collection", collection_name=previous)
                log.info("Milvus alias %s now names %s (%d vectors)", self.alias, index.collection, len(index))
                self._drop_abandoned(keep=index.collection)
        return index.collection

    def _wait_for_index(self, collection: str) -> None:
        """Wait until a server has indexed every flushed row, so the alias never names a half-indexed collection.

        A Milvus server builds the HNSW index of sealed segments in the background after a flush and
        answers from unindexed segments by brute force meanwhile; Milvus Lite indexes as it writes.
        """
        waited, last_log = 0.0, 0.0
        while True:
            described = self._call("describe_index", collection_name=collection, index_name="vector")
            if described.get("state") == "Failed":
                reason = described.get("index_state_fail_reason") or described.get("fail_reason") or "no reason given"
                raise ConfigError(
                    f"Milvus could not build the index of {collection} ({reason}); the live collection was kept."
                )
            pending = int(described.get("pending_index_rows", 0) or 0)
            if pending <= 0:
                return
            if waited - last_log >= 10:
                log.info("Milvus is indexing %s: %d rows to go", collection, pending)
                last_log = waited
            time.sleep(INDEX_POLL_SECONDS)
            waited += INDEX_POLL_SECONDS

    def _drop_abandoned(self, keep: str) -> None:
        """Drop unaliased collections of this prefix left by builds that died long ago."""
        cutoff = now_iso_stamp(-STALE_BUILD_SECONDS)
        for name in self._call("list_collections"):
            if name == keep or not name.startswith(f"{self.alias}_g"):
                continue
            if name[len(self.alias) + 2 :].split("_")[0] < cutoff and not self._aliases_of(name):
                self._call("drop_collection", collection_name=name)

    def describe(self) -> dict[str, Any]:
        """Which store, where, and how many vectors it holds (for ``admin info``)."""
        return {"store": self.kind, "store_location": f"{self.location} (alias {self.alias})"}


def now_iso_stamp(offset_seconds: float = 0) -> str:
    """A UTC time as the compact stamp collection names carry (sortable as text)."""
    from datetime import datetime, timedelta, timezone

    moment = datetime.now(timezone.utc) + timedelta(seconds=offset_seconds)
    return moment.strftime("%Y%m%dT%H%M%S")
