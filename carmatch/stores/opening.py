"""The vector store the settings name: hnswlib in the index folder, or Milvus at CARMATCH_MILVUS_URI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from carmatch.stores.store import MILVUS_EF_SEARCH, VectorStore

if TYPE_CHECKING:
    from carmatch.catalog import Catalog
    from carmatch.config import Settings


def open_store(settings: Settings, catalog: Catalog) -> VectorStore:
    """The store the settings name (CARMATCH_VECTOR_STORE); Milvus reads filter attributes from ``catalog``."""
    if settings.vector_store == "milvus":
        from carmatch.stores.milvus_store import MilvusStore, catalog_attributes

        return MilvusStore(
            settings.milvus_location,
            token=settings.milvus_token,
            prefix=settings.milvus_collection,
            ef_search=settings.hnsw_ef_search or MILVUS_EF_SEARCH,
            attributes=catalog_attributes(catalog),
            changes=catalog.attribute_changes_since,
            lock_key=settings.index_dir,
        )
    from carmatch.stores.hnsw_store import IndexStore

    return IndexStore(
        settings.index_dir,
        exact_max=settings.exact_search_max,
        m=settings.hnsw_m,
        ef_construction=settings.hnsw_ef_construction,
        ef_search=settings.hnsw_ef_search,
        ann=settings.ann,
        probes=settings.cell_probes,
    )
