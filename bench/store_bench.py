"""Vector-store benchmark: hnswlib, Milvus Lite and a Milvus server side by side on clustered 512-d vectors.

    python bench/store_bench.py                          # 100k, hnswlib and Milvus Lite, ef 64 128 1024
    python bench/store_bench.py --sizes 100000 1000000 --stores hnswlib milvus-server --ef 64 128
    python bench/store_bench.py --sizes 20000 --ef 32 64 128 256

For each store and size it prints build time (adding every vector until searchable), query p50/p95
for k=10, recall@10 against exact search (one BLAS matrix product), filtered-query p50 (a scalar
filter matching ~10 % of the collection), resident memory and disk. Both stores use HNSW with
M=16, ef_construction=200 and the same search ef (Milvus Lite 3.x builds faiss HNSW per segment).
Milvus Lite runs inside this process, so the peak RSS of its line includes it; ``milvus-server`` starts a
Milvus 2.3.5 standalone server (PyPI's ``milvus`` package, requirements-dev.txt) in its own process and
prints its peak RSS beside this process's. Each store
answers 20 warm-up queries before the clock starts. Never asserted by tests.

Targets (issue #16): recall@10 >= 0.99 for both; Milvus Lite query p50 within 3x of hnswlib at 1M.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.synthetic import clustered, pct  # noqa: E402
from carmatch.stores.index import IndexManifest, VectorIndex  # noqa: E402
from carmatch.stores.index_files import write_generation  # noqa: E402
from tests.milvus_server import start_server  # noqa: E402

COLORS = ("red", "blue", "green", "black", "white", "silver", "grey", "yellow", "brown", "orange")
K = 10


def rss_mb() -> float:
    """Peak resident memory of this process in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def disk_mb(path: Path) -> float:
    """Bytes under ``path`` in MB."""
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def color_of(i: int) -> str:
    """The synthetic colour attribute of vector ``i`` (10 values, ~10 % each)."""
    return COLORS[(i * 7919) % len(COLORS)]


def exact_top(vectors: np.ndarray, queries: np.ndarray, mask: np.ndarray | None = None) -> list[set[str]]:
    """Ground truth: the exact top-10 ids of every query, by one matrix product."""
    scores = queries @ vectors.T
    if mask is not None:
        scores[:, ~mask] = -np.inf
    top = np.argpartition(-scores, K - 1, axis=1)[:, :K]
    return [{str(i) for i in row} for row in top]


def measure(search, queries: np.ndarray, truth: list[set[str]]) -> tuple[float, float, float]:
    """(p50 ms, p95 ms, recall@10) of ``search(q)`` over the queries."""
    for q in queries[:20]:
        search(q)  # warm-up: caches, lazily loaded segments
    times, hits = [], 0
    for q, expected in zip(queries, truth):
        start = time.perf_counter()
        found = search(q)
        times.append(time.perf_counter() - start)
        hits += len({i for i, _ in found} & expected)
    return pct(times, 50), pct(times, 95), hits / (K * len(queries))


def bench_hnswlib(vectors: np.ndarray, queries: np.ndarray, efs: list[int], folder: Path) -> None:
    """hnswlib through carmatch's VectorIndex (graph always on, as above exact_max)."""
    n, dim = vectors.shape
    index = VectorIndex(IndexManifest("bench", "bench", "none", "0", dim), exact_max=0, ann="hnsw")
    ids = [str(i) for i in range(n)]
    start = time.perf_counter()
    index.add(ids, vectors)
    index.ensure_graph()
    build = time.perf_counter() - start
    truth = exact_top(vectors, queries)
    red = np.array([color_of(i) == "red" for i in range(n)])
    red_truth = exact_top(vectors, queries, red)
    allowed = {str(i) for i in np.flatnonzero(red)}  # what catalog.filter_ids would hand over
    write_generation(index, folder)
    for ef in efs:
        index.ef_search = ef
        p50, p95, recall = measure(lambda q: index.search(q, K), queries, truth)
        f50, _, f_recall = measure(lambda q: index.search(q, K, allowed), queries, red_truth)
        print(
            f"{'hnswlib':13} n={n:>8} ef={ef:>5}: build {build:7.1f} s  query p50 {p50:6.2f} ms p95 {p95:6.2f} ms  "
            f"recall@10 {recall:.4f}  filtered p50 {f50:6.2f} ms recall {f_recall:.4f}  "
            f"RSS {rss_mb():.0f} MB  disk {disk_mb(folder):.0f} MB"
        )


def server_rss_mb(pid: int) -> float:
    """Peak resident memory of the Milvus server process in MB (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_milvus(vectors: np.ndarray, queries: np.ndarray, efs: list[int], folder: Path, server: bool = False) -> None:
    """Milvus through carmatch's MilvusStore: new collection, upserts, alias switch, searches.

    ``server``: a Milvus standalone server in its own process (its RSS and data folder are reported);
    else Milvus Lite inside this process.
    """
    from carmatch.stores.milvus_store import MilvusStore

    n, dim = vectors.shape
    attributes = lambda chunk: {i: {"color": color_of(int(i))} for i in chunk}  # noqa: E731
    running = start_server(folder / "server") if server else None
    uri = f"http://127.0.0.1:{running.listen_port}" if running else str(folder / "bench.db")
    store = MilvusStore(uri, prefix="bench", attributes=attributes, lock_key=folder / "lock")
    _ = store.client  # connect (start Milvus Lite) before the clock
    start = time.perf_counter()
    index = store.new_index(IndexManifest("bench", "bench", "none", "0", dim))
    for offset in range(0, n, 10_000):
        index.add([str(i) for i in range(offset, min(n, offset + 10_000))], vectors[offset : offset + 10_000])
    store.save(index)  # flush, build the HNSW index (a server: wait until every row is indexed), load, switch
    index.search(queries[0], K)  # first search waits for the index to be served
    build = time.perf_counter() - start
    label = "milvus-server" if running else "milvus-lite"
    truth = exact_top(vectors, queries)
    red = np.array([color_of(i) == "red" for i in range(n)])
    red_truth = exact_top(vectors, queries, red)
    for ef in efs:
        store.ef_search = ef
        p50, p95, recall = measure(lambda q: index.search(q, K), queries, truth)
        f50, _, f_recall = measure(lambda q: index.search(q, K, where={"color": "red"}), queries, red_truth)
        memory = f"RSS {rss_mb():.0f} MB" + (
            f" + server {server_rss_mb(running.server_proc.pid):.0f} MB" if running else ""
        )
        print(
            f"{label:13} n={n:>8} ef={ef:>5}: build {build:7.1f} s  query p50 {p50:6.2f} ms p95 {p95:6.2f} ms  "
            f"recall@10 {recall:.4f}  filtered p50 {f50:6.2f} ms recall {f_recall:.4f}  "
            f"{memory}  disk {disk_mb(folder):.0f} MB",
            flush=True,
        )
    store.client.close()
    if running:
        running.stop()


def main() -> None:
    """Parse arguments and run each store at each size."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    parser.add_argument(
        "--stores", nargs="*", default=["hnswlib", "milvus"], choices=["hnswlib", "milvus", "milvus-server"]
    )
    parser.add_argument("--ef", type=int, nargs="*", default=[64, 128, 1024], help="search ef values to measure")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPU cores; clustered {args.dim}-d unit vectors; {args.queries} held-out queries; k={K}")
    for n in args.sizes:
        vectors = clustered(n, args.dim, seed=1)
        queries = clustered(args.queries, args.dim, seed=2)
        for kind in args.stores:
            folder = Path(tempfile.mkdtemp(prefix=f"store-bench-{kind}-"))
            try:
                if kind == "hnswlib":
                    bench_hnswlib(vectors, queries, args.ef, folder)
                else:
                    bench_milvus(vectors, queries, args.ef, folder, server=kind == "milvus-server")
            finally:
                shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
