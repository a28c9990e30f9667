"""Search-spine benchmark: prints ingest and query speed next to the bare encoder, index recall and memory.

    python bench/search_bench.py                      # ViT-B-32-256, random weights (same compute)
    python bench/search_bench.py --pretrained datacomp_s34b_b86k --images 512
    python bench/search_bench.py --model tiny.json --pretrained tiny.pt --sizes 10000

Targets: ingest >= 0.9x bare encoder throughput; query p50 <= 1.2x the bare encoder call;
hnswlib recall@10 >= 0.99 against exact search on clustered vectors.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.synthetic import clustered, pct  # noqa: E402
from carmatch.config import Settings  # noqa: E402
from carmatch.embedding.embedder import load_clip  # noqa: E402
from carmatch.runtime import Runtime  # noqa: E402
from carmatch.stores.index import IndexManifest, VectorIndex  # noqa: E402
from tests.drawing import COLORS, draw_car  # noqa: E402


def rss_mb() -> float:
    """Peak resident memory of this process in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_photos(folder: Path, n: int) -> list[Path]:
    """n drawn car photos at a camera-like 640x480, saved as JPEG."""
    colors = list(COLORS)
    paths = []
    for i in range(n):
        img = draw_car(colors[i % len(colors)], ("sedan", "pickup", "van")[i % 3], size=(640, 480), seed=i)
        path = folder / f"car_{i:05d}.jpg"
        img.save(path, quality=90)
        paths.append(path)
    return paths


def bench_encoder_and_ingest(args: argparse.Namespace) -> None:
    """Ingest throughput vs bare encode_image; text/image query latency vs the bare encoder call."""
    from PIL import Image

    embedder = load_clip(args.model, args.pretrained, args.device)
    print(f"model {embedder.spec.arch} ({args.pretrained}) on {embedder.device}, batch {args.batch_size}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        photos = make_photos(folder, args.images)
        decoded = [Image.open(p).convert("RGB") for p in photos]

        embedder.encode_images(decoded[: args.batch_size], args.batch_size)  # warm-up
        start = time.perf_counter()
        embedder.encode_images(decoded, args.batch_size)
        bare = len(decoded) / (time.perf_counter() - start)

        settings = Settings(
            home=Path(tmp) / "home",
            model=args.model,
            pretrained=args.pretrained,
            device=args.device,
            batch_size=args.batch_size,
        )
        runtime = Runtime(settings, embedder=embedder)
        start = time.perf_counter()
        report = runtime.ingestor().ingest_folder(folder)
        ingest = report.embedded / (time.perf_counter() - start)
        print(f"encode_image (bare, decoded images): {bare:7.1f} images/s")
        print(f"ingest (read+hash+validate+embed+index): {ingest:7.1f} images/s  = {ingest / bare:.2f}x bare")

        texts = [f"a {c} {b} parked on a street" for c in COLORS for b in ("sedan", "pickup truck", "van")]
        bare_text, query_text, bare_img, query_img = [], [], [], []
        runtime.search(text="warm up", k=12)
        for i in range(args.queries):
            t = texts[i % len(texts)]
            s = time.perf_counter()
            embedder.encode_texts([t])
            bare_text.append(time.perf_counter() - s)
            s = time.perf_counter()
            runtime.search(text=t, k=12)
            query_text.append(time.perf_counter() - s)
            photo = photos[i % len(photos)]
            s = time.perf_counter()
            embedder.encode_images([Image.open(photo).convert("RGB")])
            bare_img.append(time.perf_counter() - s)
            s = time.perf_counter()
            runtime.search(image=photo, k=12)
            query_img.append(time.perf_counter() - s)
        for label, query, bare_call, bare_label in (
            ("text query ", query_text, bare_text, "bare encode_text"),
            ("image query", query_img, bare_img, "bare open+encode_image"),
        ):
            ratio = pct(query, 50) / pct(bare_call, 50)
            print(
                f"{label}: p50 {pct(query, 50):6.1f} ms  p95 {pct(query, 95):6.1f} ms | "
                f"{bare_label} p50 {pct(bare_call, 50):6.1f} ms  -> {ratio:.2f}x"
            )
        runtime.close()
    print(f"peak RSS after model + ingest: {rss_mb():.0f} MB")


def bench_index(sizes: list[int], dim: int, queries: int, kind: str) -> None:
    """Build time, recall@10 vs exact, and query times at each size, with carmatch's default parameters."""
    defaults = Settings()
    for n in sizes:
        vectors = clustered(n, dim, seed=1, kind=kind)
        qs = clustered(queries, dim, seed=2, kind=kind)
        manifest = IndexManifest("bench", "bench", "none", "0", dim)
        index = VectorIndex(
            manifest,
            exact_max=0,
            m=defaults.hnsw_m,
            ef_construction=defaults.hnsw_ef_construction,
            ef_search=defaults.hnsw_ef_search,
            ann="hnsw",  # this bench measures the graph; bench/ann_bench.py compares it with cells
        )
        index.add([str(i) for i in range(n)], vectors)
        start = time.perf_counter()
        index.ensure_graph()
        build = time.perf_counter() - start
        hits, t_exact, t_hnsw = 0, [], []
        for q in qs:
            s = time.perf_counter()
            exact = {i for i, _ in index.search_exact(q, 10)}
            t_exact.append(time.perf_counter() - s)
            s = time.perf_counter()
            approx = {i for i, _ in index.search(q, 10)}
            t_hnsw.append(time.perf_counter() - s)
            hits += len(exact & approx)
        print(
            f"index {kind:>6} {n:>7} x {dim}: build {build:6.1f} s  recall@10 {hits / (10 * queries):.4f}  "
            f"query exact p50 {pct(t_exact, 50):6.2f} ms  hnsw p50 {pct(t_hnsw, 50):6.2f} ms  RSS {rss_mb():.0f} MB"
        )


def bench_crossover(dim: int) -> None:
    """Exact numpy vs hnswlib query time at small sizes: where the automatic switch should sit."""
    for n in (1_000, 5_000, 10_000, 20_000, 30_000, 50_000):
        vectors = clustered(n, dim, seed=3)
        defaults = Settings()
        index = VectorIndex(
            IndexManifest("x", "x", "none", "0", dim),
            exact_max=0,
            m=defaults.hnsw_m,
            ef_construction=defaults.hnsw_ef_construction,
            ef_search=defaults.hnsw_ef_search,
            ann="hnsw",  # this bench measures the graph; bench/ann_bench.py compares it with cells
        )
        index.add([str(i) for i in range(n)], vectors)
        index.ensure_graph()
        qs = clustered(50, dim, seed=4)
        te, th = [], []
        for q in qs:
            s = time.perf_counter()
            index.search_exact(q, 10)
            te.append(time.perf_counter() - s)
            s = time.perf_counter()
            index.search(q, 10)
            th.append(time.perf_counter() - s)
        print(f"crossover n={n:>6}: exact p50 {pct(te, 50):6.3f} ms   hnsw p50 {pct(th, 50):6.3f} ms")


def main() -> None:
    """Parse arguments and run the selected benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B-32-256")
    parser.add_argument("--pretrained", default="none", help="'none' measures the same compute without weights")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--skip-crossover", action="store_true")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--skip-model", action="store_true", help="only benchmark the index")
    parser.add_argument("--data", nargs="*", default=["real", "stress"], choices=["real", "stress"])
    args = parser.parse_args()
    if not args.skip_model:
        bench_encoder_and_ingest(args)
    if not args.skip_crossover:
        bench_crossover(args.dim)
    for kind in args.data:
        bench_index(args.sizes, args.dim, queries=200, kind=kind)


if __name__ == "__main__":
    main()
