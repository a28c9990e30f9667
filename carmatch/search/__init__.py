"""Search: CLIP embedder, vector index, searcher, ingest and uploads."""
