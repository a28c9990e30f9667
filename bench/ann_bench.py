"""Cross-modal search: recall@10 against latency for photo-like and text-like queries, cells vs hnswlib vs exact.

    python bench/ann_bench.py                       # 100k x 512: exact, cells (every probe count), hnswlib (ef curve)
    python bench/ann_bench.py --sizes 100000 1000000 --hnsw-max 100000

A text query sits far from the images it describes (CLIP's modality gap), between clusters, where
a graph built from images needs a very wide search. The text-like queries here are held-out image
vectors moved to cosine 0.25 of themselves in a random direction; the photo-like ones are the held-out
vectors as they are. Every approximate p50 is printed beside exact numpy search (carmatch's own
``search_exact``, one matrix-vector product) measured in the same run on the same index, with the
load average, since the machine is shared. Writes bench/results/ann_bench.json. Never asserted by tests.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.environment import Printer, describe, environment, record  # noqa: E402
from bench.synthetic import clustered  # noqa: E402
from carmatch.stores.index import IndexManifest, VectorIndex  # noqa: E402

K = 10
DIM = 512
TEXT_COSINE = 0.25


def collection(n: int) -> np.ndarray:
    """``n`` clustered unit vectors, made 100k at a time (the same vectors for the same n)."""
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        out[start:stop] = clustered(stop - start, DIM, seed=start // 100_000)
    return out


def text_like(vectors: np.ndarray, seed: int = 5) -> np.ndarray:
    """Each vector moved to cosine TEXT_COSINE of itself in a random direction."""
    noise = np.random.default_rng(seed).normal(size=vectors.shape).astype(np.float32)
    noise -= (noise * vectors).sum(axis=1, keepdims=True) * vectors
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return (TEXT_COSINE * vectors + np.sqrt(1 - TEXT_COSINE**2) * noise).astype(np.float32)


def timed(search, queries: np.ndarray, truth: list[set[str]] | None = None) -> tuple[float, float, list[set[str]]]:
    """(p50 ms, recall@10 against ``truth``, the ids found) of ``search(q)`` over the queries, after 10 warm-ups."""
    for q in queries[:10]:
        search(q)
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        got = search(q)
        times.append(time.perf_counter() - start)
        found.append({i for i, _ in got})
    recall = 1.0 if truth is None else sum(len(f & t) for f, t in zip(found, truth)) / (K * len(queries))
    return float(np.median(times) * 1000), recall, found


def searcher(index: VectorIndex) -> Callable[[np.ndarray], list[tuple[str, float]]]:
    """The index's search for the top K (cells, graph or exact, as the index is set)."""
    return lambda q: index.search(q, K)


def exact_search(index: VectorIndex) -> Callable[[np.ndarray], list[tuple[str, float]]]:
    """The index's exact numpy search for the top K (the reference)."""
    return lambda q: index.search_exact(q, K)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--queries", type=int, default=300, help="held-out queries of each kind")
    parser.add_argument("--probes", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128])
    parser.add_argument("--ef", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--hnsw-max", type=int, default=100_000, help="build the hnswlib graph up to this size")
    args = parser.parse_args(argv)
    out = Printer()
    env = environment()
    out(describe(env))
    photo = clustered(args.queries, DIM, seed=99)
    kinds = {"photo": photo, "text": text_like(photo)}
    data: dict[str, dict] = {}
    for n in args.sizes:
        manifest = IndexManifest("bench", "synthetic", "none", "-", DIM)
        index = VectorIndex(manifest, exact_max=0, ann="cells")
        start = time.perf_counter()
        index.add([str(i) for i in range(n)], collection(n))
        out(f"\n## {n:,} x {DIM} clustered unit vectors (added in {time.perf_counter() - start:.1f} s)")
        truth, result = {}, {"exact": {}, "cells": [], "hnsw": []}
        for kind, queries in kinds.items():
            p50, _, truth[kind] = timed(exact_search(index), queries)
            result["exact"][kind] = p50
        exact = result["exact"]
        out(f"exact numpy       photo p50 {exact['photo']:7.3f} ms            | text p50 {exact['text']:7.3f} ms")
        start = time.perf_counter()
        index.cells  # noqa: B018 -- learn the cells (k-means) now, to time it apart
        learnt = time.perf_counter() - start
        start = time.perf_counter()
        measured = index.search_probes()
        tuned = time.perf_counter() - start
        out(f"cells: {len(index.cells)} learnt in {learnt:.1f} s; probes measured in {tuned:.1f} s: {measured}")
        for probes in sorted({*args.probes, measured}):
            index.probes = probes
            row = {"probes": probes, "measured": probes == measured}
            for kind, queries in kinds.items():
                row[f"{kind}_p50"], row[f"{kind}_recall"], _ = timed(searcher(index), queries, truth[kind])
            result["cells"].append(row)
            mark = "  <- measured" if row["measured"] else ""
            out(
                f"cells probes {probes:4d}  photo p50 {row['photo_p50']:7.3f} ms rec {row['photo_recall']:.4f} | "
                f"text p50 {row['text_p50']:7.3f} ms rec {row['text_recall']:.4f} | "
                f"text {row['text_p50'] / exact['text']:.3f}x exact{mark}"
            )
        result["cells_count"], result["cells_learn_s"], result["probes_tune_s"] = len(index.cells), learnt, tuned
        if n <= args.hnsw_max:
            index.ann = "hnsw"
            start = time.perf_counter()
            index.ensure_graph()
            result["hnsw_build_s"] = time.perf_counter() - start
            out(
                f"hnswlib graph (M {index.m}, ef_construction {index.ef_construction}) built in "
                f"{result['hnsw_build_s']:.1f} s"
            )
            for ef in args.ef:
                index.ef_search = ef
                row = {"ef": ef}
                for kind, queries in kinds.items():
                    row[f"{kind}_p50"], row[f"{kind}_recall"], _ = timed(searcher(index), queries, truth[kind])
                result["hnsw"].append(row)
                out(
                    f"hnswlib ef {ef:6d}  photo p50 {row['photo_p50']:7.3f} ms rec {row['photo_recall']:.4f} | "
                    f"text p50 {row['text_p50']:7.3f} ms rec {row['text_recall']:.4f} | "
                    f"text {row['text_p50'] / exact['text']:.3f}x exact"
                )
        data[str(n)] = result
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    out(f"\n# load average at the end: {load}")
    command = "python bench/ann_bench.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    print(f"wrote {record('ann_bench', command.strip(), env, out.lines, data)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
