"""Vectors kept and queried: the store interface, hnswlib (embedded) and Milvus (Lite, server, cluster).

- ``store``: the one interface every caller relies on; ``opening``: the store the settings name
- ``index``, ``index_files``, ``rows``, ``tuning``, ``hnsw_store``: hnswlib generations on disk, ef by measurement
- ``cells``: the default approximate search above the exact size (k-means cells scanned exactly; text-fast)
- ``milvus_store``, ``milvus_index``: one Milvus collection per generation behind an alias
- ``migrate``: move an index between stores from cached embeddings; ``write_lock``: the one writer lock

May import: ``carmatch.errors``, ``carmatch.atomic``, ``carmatch.progress``, ``carmatch.config``,
``carmatch.catalog`` (attributes for Milvus filters) and ``carmatch.embedding.vectors``. Never ingest, search
or anything above them.
"""
