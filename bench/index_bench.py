"""Index memory and one-image appends at 100k, each beside a bare hnswlib reference measured in the same run.

    python bench/index_bench.py                       # 100k x 512 clustered vectors
    python bench/index_bench.py --n 20000 --repeats 3 # a quick look
    python bench/index_bench.py --folder /tmp/ib      # keep (and reuse) the built index

Memory: resident-set growth (VmRSS, this process's pages, file-backed ones included) of a fresh
process that loads the index and answers queries, against the raw vectors (n x dim x 4 bytes) plus
the graph's links (hnsw.bin minus the vectors), and against a bare ``hnswlib.Index.load_index`` of
the same file. Appends: load the saved index, add one vector, save (carmatch appends a segment),
against a full rewrite of the same index (what every save did before segments) and a bare
``np.save`` + ``hnswlib.save_index`` + fsync of the same data; repeats interleaved, min and median.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.synthetic import clustered  # noqa: E402
from carmatch.atomic import fsync_file  # noqa: E402
from carmatch.stores.hnsw_store import IndexStore  # noqa: E402
from carmatch.stores.index import IndexManifest, VectorIndex  # noqa: E402
from carmatch.stores.index_files import split_pointer, write_generation  # noqa: E402

MB = 1024 * 1024


def rss_bytes() -> int:
    """This process's resident set now (VmRSS), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def build(folder: Path, n: int, dim: int, exact_max: int) -> IndexStore:
    """A store at ``folder`` holding n clustered vectors (built once; reused when already there)."""
    store = IndexStore(folder, exact_max=exact_max, ann="hnsw")
    if store.exists() and n <= store.read_manifest().count <= n + 1000:  # reused (with earlier runs' appends)
        return store
    vectors = clustered(n, dim, seed=1)
    index = VectorIndex(IndexManifest("bench", "bench", "none", "0", dim), exact_max=exact_max, ann="hnsw")
    index.add([str(i) for i in range(n)], vectors)
    start = time.perf_counter()
    store.save(index)
    print(f"built and saved {n} x {dim} in {time.perf_counter() - start:.1f} s", flush=True)
    return store


def child_memory(kind: str, folder: str, exact_max: int) -> None:
    """(In a fresh process) print JSON: RSS growth from loading the index and answering 50 queries."""
    import hnswlib

    queries = clustered(50, 512, seed=2)
    base = rss_bytes()
    if kind == "bare":
        store = IndexStore(Path(folder), exact_max=exact_max, ann="hnsw")
        gen = Path(folder) / split_pointer(store.current_generation() or "")[0]
        if (gen / "hnsw.bin").exists():
            graph = hnswlib.Index(space="cosine", dim=queries.shape[1])
            graph.load_index(str(gen / "hnsw.bin"))
            graph.set_ef(64)
            for q in queries:
                graph.knn_query(q[None, :], k=10)
        else:  # exact search: the matrix read into memory, one product per query
            matrix = np.load(gen / "vectors.npy")
            for q in queries:
                np.argpartition(-(matrix @ q), 10)[:10]
    elif kind == "before":  # what loading did before #15: the matrix read and copied (astype), and the graph
        store = IndexStore(Path(folder), exact_max=exact_max, ann="hnsw")
        gen = Path(folder) / split_pointer(store.current_generation() or "")[0]
        matrix = np.load(gen / "vectors.npy").astype(np.float32)
        if (gen / "hnsw.bin").exists():
            graph = hnswlib.Index(space="cosine", dim=queries.shape[1])
            graph.load_index(str(gen / "hnsw.bin"))
            for q in queries:
                graph.knn_query(q[None, :], k=10)
        else:
            for q in queries:
                np.argpartition(-(matrix @ q), 10)[:10]
    else:
        index = IndexStore(Path(folder), exact_max=exact_max, ann="hnsw").load()
        for q in queries:
            index.search(q, 10)
        index.vector("7")  # find similar reads one stored vector
    print(json.dumps({"rss": rss_bytes() - base}))


def measure_memory(folder: Path, exact_max: int) -> dict[str, int]:
    """RSS growth of carmatch's loaded index and of a bare hnswlib load, each in a fresh process."""
    out = {}
    for kind in ("bare", "before", "carmatch"):
        cmd = [sys.executable, __file__, "--child", kind, "--folder", str(folder), "--exact-max", str(exact_max)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[kind] = json.loads(done.stdout.strip().splitlines()[-1])["rss"]
    return out


def append_once(store: IndexStore, vector: np.ndarray, label: str) -> float:
    """Seconds to load the saved index, add one vector and save it (what a one-image ingest does to the index)."""
    start = time.perf_counter()
    index = store.load()
    index.add([label], vector[None, :])
    store.save(index)
    return time.perf_counter() - start


def full_rewrite(store: IndexStore, scratch: Path) -> float:
    """Seconds to load the index and write all of it again (every save before segments)."""
    shutil.rmtree(scratch, ignore_errors=True)
    start = time.perf_counter()
    index = store.load()
    write_generation(index, scratch)
    return time.perf_counter() - start


def bare_rewrite(store: IndexStore, scratch: Path) -> float:
    """Seconds for bare hnswlib + numpy to load the graph and write graph and vectors again, fsynced."""
    import hnswlib

    gen = store.folder / split_pointer(store.current_generation() or "")[0]
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    start = time.perf_counter()
    graph = hnswlib.Index(space="cosine", dim=store.read_manifest().dim)
    graph.load_index(str(gen / "hnsw.bin"))
    vectors = np.load(gen / "vectors.npy")
    graph.save_index(str(scratch / "hnsw.bin"))
    np.save(scratch / "vectors.npy", vectors)
    fsync_file(scratch / "hnsw.bin")
    fsync_file(scratch / "vectors.npy")
    return time.perf_counter() - start


def catalog_scans(path: Path, n: int, dim: int, repeats: int) -> dict[str, list[float]]:
    """Seconds of whole-catalog reads at n images: an ingest run makes count() now, ids() and embedded_ids() before."""
    from carmatch.catalog import Catalog

    catalog = Catalog(path)
    if catalog.count() < n:
        vectors = clustered(n, dim, seed=1)
        with catalog._transaction():  # one commit for the whole fill (bench set-up only)
            for i in range(catalog.count(), n):
                image_id = f"{i:064x}"
                catalog.add_image(image_id, f"/photos/{i}.jpg", 640, 480, "JPEG", 100_000)
                catalog.put_embeddings("bench", [image_id], vectors[i : i + 1])
    calls: dict[str, Callable[[], object]] = {
        "catalog.count()": catalog.count,
        "catalog.ids()": catalog.ids,
        "catalog.embedded_ids()": lambda: catalog.embedded_ids("bench"),
    }
    times: dict[str, list[float]] = {label: [] for label in calls}
    for _ in range(repeats):
        for label, call in calls.items():
            start = time.perf_counter()
            call()
            times[label].append(time.perf_counter() - start)
    catalog.close()
    return times


def summary(label: str, seconds: list[float]) -> str:
    """One line: min and median in ms."""
    return f"{label:<52} min {min(seconds) * 1000:9.1f} ms  median {statistics.median(seconds) * 1000:9.1f} ms"


def main() -> None:
    """Parse arguments and print the memory and append figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--exact-max", type=int, default=40_000, help="CARMATCH_EXACT_SEARCH_MAX")
    parser.add_argument("--folder", type=Path, help="where to build (and reuse) the index; default a temp folder")
    parser.add_argument("--child", choices=["bare", "before", "carmatch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_memory(args.child, str(args.folder), args.exact_max)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="index-bench-"))
    store = build(folder / "index", args.n, args.dim, args.exact_max)
    raw = args.n * args.dim * 4
    gen = store.folder / split_pointer(store.current_generation() or "")[0]
    links = (gen / "hnsw.bin").stat().st_size - raw if (gen / "hnsw.bin").exists() else 0
    rss = measure_memory(store.folder, args.exact_max)
    reference = raw + links
    print(f"raw vectors {raw / MB:.0f} MB + graph links {links / MB:.0f} MB = {reference / MB:.0f} MB")
    bare = "hnswlib load_index" if links else "np.load + numpy exact"
    print(f"bare {bare} + 50 queries: RSS +{rss['bare'] / MB:.0f} MB")
    print(f"before #15 (matrix copied + graph) + 50 queries: RSS +{rss['before'] / MB:.0f} MB")
    print(
        f"carmatch load + 50 queries + vector(): RSS +{rss['carmatch'] / MB:.0f} MB "
        f"= {rss['carmatch'] / reference:.2f}x (raw + graph), {rss['carmatch'] / max(rss['bare'], 1):.2f}x bare"
    )
    extra = clustered(args.repeats, args.dim, seed=9)
    appends, fulls, bares = [], [], []
    for r in range(args.repeats):  # interleaved, so a busy moment hits all three alike
        appends.append(append_once(store, extra[r], f"extra{r}-{time.time_ns()}"))
        fulls.append(full_rewrite(store, folder / "scratch"))
        if links:
            bares.append(bare_rewrite(store, folder / "scratch"))
    print(summary("append one vector (load + add + save):", appends))
    print(summary("full rewrite (load + write generation):", fulls))
    if bares:
        print(summary("bare hnswlib load + save + np.save, fsync:", bares))
    print(f"-> append is {statistics.median(fulls) / statistics.median(appends):.0f}x faster than a full rewrite")
    scans = {
        label: statistics.median(t)
        for label, t in catalog_scans(folder / "catalog.db", args.n, args.dim, args.repeats).items()
    }
    before = scans["catalog.ids()"] + 2 * scans["catalog.embedded_ids()"]
    print(
        f"one-image ingest, whole-catalog reads at {args.n}: now count() {scans['catalog.count()'] * 1000:.1f} ms; "
        f"before #15 ids() + 2 x embedded_ids() {before * 1000:.1f} ms (medians)"
    )
    print(f"CURRENT now {store.current_generation()}; load average {os.getloadavg()[0]:.1f} at end")
    shutil.rmtree(folder / "scratch", ignore_errors=True)
    if args.folder is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
