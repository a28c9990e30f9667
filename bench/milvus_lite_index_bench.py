"""Milvus Lite: which vector index type answers fastest, on the store benchmark's clustered vectors.

    python bench/milvus_lite_index_bench.py                         # 20k, HNSW FLAT IVF_FLAT
    python bench/milvus_lite_index_bench.py --n 100000 --types IVF_FLAT HNSW
    /tmp/lite25/bin/python bench/milvus_lite_index_bench.py --n 1000000 --types IVF_FLAT HNSW --batch 2000

It needs only numpy, pymilvus and milvus-lite (and chroma-hnswlib for the reference line), so the last
form runs it in a side environment holding another Milvus Lite release, e.g. the C++ 2.5.1:
``python -m venv /tmp/lite25 && /tmp/lite25/bin/pip install milvus-lite==2.5.1 pymilvus==3.0.2
setuptools==80.9.0 numpy chroma-hnswlib==0.7.6``. Milvus Lite 2.5.1 takes a batch of 2,000 rows in
0.3 s but 4,000 in 18 s (measured), hence ``--batch``. Before the Milvus lines it prints a bare
hnswlib reference on the same vectors (M=16, efConstruction=200, ef=128, both cores), the p50 the
issue's target compares with.

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

from bench.synthetic import clustered, pct  # noqa: E402


def bare_hnswlib(vectors: np.ndarray, queries: np.ndarray, truth: list[set[int]]) -> str:
    """The reference: hnswlib alone on the same vectors (M=16, efConstruction=200, ef=128, every core)."""
    try:
        import hnswlib
    except ImportError:
        return "hnswlib reference: not installed here (pip install chroma-hnswlib==0.7.6)"
    n, dim = vectors.shape
    start = time.perf_counter()
    index = hnswlib.Index(space="cosine", dim=dim)
    index.init_index(max_elements=n, M=16, ef_construction=200)
    index.add_items(vectors, np.arange(n))
    build = time.perf_counter() - start
    index.set_ef(128)
    index.set_num_threads(1)
    for q in queries[:20]:
        index.knn_query(q, k=K)
    times, hits = [], 0
    for q, expected in zip(queries, truth):
        began = time.perf_counter()
        labels, _ = index.knn_query(q, k=K)
        times.append(time.perf_counter() - began)
        hits += len(set(labels[0].tolist()) & expected)
    return (
        f"{'hnswlib':9} n={n:>8}: build {build:6.1f} s  "
        f"query p50 {pct(times, 50):8.2f} ms p95 {pct(times, 95):8.2f} ms  "
        f"recall@10 {hits / (K * len(queries)):.4f}  (bare reference, ef 128)"
    )


K = 10
BUILD = {"HNSW": {"M": 16, "efConstruction": 200}, "IVF_FLAT": {"nlist": 256}}
SEARCH = {"HNSW": {"ef": 64}, "IVF_FLAT": {"nprobe": 16}}


def bench_type(
    client: Any, kind: str, vectors: np.ndarray, queries: np.ndarray, truth: list[set[int]], batch: int
) -> str:
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
    client.create_collection(name, schema=schema)
    params = {"metric_type": "COSINE", "params": SEARCH.get(kind, {})}
    start = time.perf_counter()
    try:
        client.create_index(name, index_params)  # the collection exists already; Lite 2.5.1 refuses HNSW here
    except Exception as exc:  # noqa: BLE001 - pymilvus raises MilvusException; report it and go on
        client.drop_collection(name)
        return f"{kind:9} n={n:>8}: refused by this Milvus Lite ({exc})"
    for offset in range(0, n, batch):
        rows = [{"id": i, "vector": vectors[i], "color": str(i % 10)} for i in range(offset, min(n, offset + batch))]
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
    parser.add_argument("--batch", type=int, default=10_000, help="rows per upsert (Milvus Lite 2.5.1: 2000)")
    parser.add_argument("--no-reference", action="store_true", help="skip the bare hnswlib line")
    args = parser.parse_args()
    from pymilvus import MilvusClient

    vectors = clustered(args.n, args.dim, seed=1).astype(np.float32)
    queries = clustered(args.queries, args.dim, seed=2).astype(np.float32)
    scores = queries @ vectors.T
    truth = [set(np.argpartition(-row, K - 1)[:K].tolist()) for row in scores]
    from importlib.metadata import version

    print(
        f"milvus-lite {version('milvus-lite')}, pymilvus {version('pymilvus')}; {args.n} clustered {args.dim}-d vectors"
    )
    if not args.no_reference:
        print(bare_hnswlib(vectors, queries, truth), flush=True)
    client = MilvusClient(uri=str(Path(tempfile.mkdtemp(prefix="milvus-lite-index-")) / "bench.db"))
    for kind in args.types:
        print(bench_type(client, kind, vectors, queries, truth, args.batch), flush=True)
    client.close()


if __name__ == "__main__":
    main()
