"""Milvus Lite: which vector index type answers fastest, on the store benchmark's clustered vectors.

    python bench/milvus_lite_index_bench.py                         # 20k, HNSW FLAT IVF_FLAT
    python bench/milvus_lite_index_bench.py --n 100000 --types IVF_FLAT HNSW

One Milvus Lite file, one collection per index type (int64 id, 512-d vector, a colour field), filled
in batches of 10,000 like carmatch's store, flushed and loaded; then p50/p95 of single-query
searches (k=10), recall@10 against exact search, and the p50 of a search filtered to ~10 %. HNSW uses
carmatch's M=16, efConstruction=200, ef=64; IVF_FLAT nlist=256, nprobe=16. It talks to pymilvus
directly (not MilvusStore), so the index type is the only difference. Never asserted by tests.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.search_bench import clustered, pct  # noqa: E402

K = 10
BUILD = {"HNSW": {"M": 16, "efConstruction": 200}, "IVF_FLAT": {"nlist": 256}}
SEARCH = {"HNSW": {"ef": 64}, "IVF_FLAT": {"nprobe": 16}}


def bench_type(client: Any, kind: str, vectors: np.ndarray, queries: np.ndarray, truth: list[set[int]]) -> str:
    """Build one collection with index ``kind`` and time its searches; one printed line."""
    from pymilvus import DataType, MilvusClient

    n, dim = vectors.shape
    name = f"bench_{kind.lower()}"
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("color", DataType.VARCHAR, max_length=32)
    index_params = client.prepare_index_params()
    index_params.add_index(field_name="vector", index_type=kind, metric_type="COSINE", params=BUILD.get(kind, {}))
    client.create_collection(name, schema=schema, index_params=index_params)
    params = {"metric_type": "COSINE", "params": SEARCH.get(kind, {})}
    start = time.perf_counter()
    for offset in range(0, n, 10_000):
        rows = [{"id": i, "vector": vectors[i], "color": str(i % 10)} for i in range(offset, min(n, offset + 10_000))]
        client.upsert(name, rows)
    client.flush(name)
    client.load_collection(name)
    for q in queries[:20]:  # warm-up, and the first search waits for the index
        client.search(name, data=[q], limit=K, search_params=params)
    build = time.perf_counter() - start
    times, hits = [], 0
    for q, expected in zip(queries, truth):
        began = time.perf_counter()
        found = client.search(name, data=[q], limit=K, search_params=params)
        times.append(time.perf_counter() - began)
        hits += len({hit["id"] for hit in found[0]} & expected)
    filtered = []
    for q in queries[:50]:
        began = time.perf_counter()
        client.search(name, data=[q], limit=K, filter='color == "3"', search_params=params)
        filtered.append(time.perf_counter() - began)
    return (
        f"{kind:9} n={n:>8}: build {build:6.1f} s  query p50 {pct(times, 50):8.2f} ms p95 {pct(times, 95):8.2f} ms  "
        f"recall@10 {hits / (K * len(queries)):.4f}  filtered p50 {pct(filtered, 50):8.2f} ms"
    )


def main() -> None:
    """Parse arguments and measure each index type."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--types", nargs="*", default=["HNSW", "FLAT", "IVF_FLAT"])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args()
    from pymilvus import MilvusClient

    vectors = clustered(args.n, args.dim, seed=1).astype(np.float32)
    queries = clustered(args.queries, args.dim, seed=2).astype(np.float32)
    scores = queries @ vectors.T
    truth = [set(np.argpartition(-row, K - 1)[:K].tolist()) for row in scores]
    client = MilvusClient(uri=str(Path(tempfile.mkdtemp(prefix="milvus-lite-index-")) / "bench.db"))
    for kind in args.types:
        print(bench_type(client, kind, vectors, queries, truth), flush=True)
    client.close()


if __name__ == "__main__":
    main()
