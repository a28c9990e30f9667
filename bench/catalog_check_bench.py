"""What the start-up integrity check costs: ``PRAGMA quick_check`` on catalogs of growing size.

    python bench/catalog_check_bench.py                      # 10k and 100k images, each with a 512-d embedding
    python bench/catalog_check_bench.py --sizes 1000 10000

The app and every command that opens a home run :meth:`CatalogBase.check_integrity` once (it reads every page
of the file); each figure is the median of 3 runs with the file in the page cache (a warm start) and the first,
cold-ish run after writing it, beside the file's size. Writes bench/results/catalog_check_bench.json.
Never asserted by tests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.environment import Printer, describe, environment, record  # noqa: E402
from carmatch.catalog import Catalog  # noqa: E402

DIM = 512
BATCH = 5_000


def build(path: Path, n: int) -> None:
    """A catalog of ``n`` captioned images, each with one cached embedding (what a real home holds)."""
    rng = np.random.default_rng(0)
    with Catalog(path) as catalog:
        for start in range(0, n, BATCH):
            ids = [f"{i:064x}" for i in range(start, min(n, start + BATCH))]
            with catalog.transaction():
                for image_id in ids:
                    catalog.add_image(image_id, f"/photos/{image_id[:8]}.jpg", 640, 480, "JPEG", 120_000)
                    catalog.set_caption(image_id, "a red pickup truck parked on a street", "imported")
            catalog.put_embeddings("bench", ids, rng.standard_normal((len(ids), DIM)).astype(np.float32))


def timed_check(path: Path) -> float:
    """Seconds for one open's integrity check."""
    with Catalog(path) as catalog:
        start = time.perf_counter()
        catalog.check_integrity()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    env = environment()
    say = Printer()
    say(describe(env))
    say(f"{'images':>8} {'file MB':>8} {'first s':>8} {'median s':>9}")
    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "carmatch.db"
            build(path, n)
            size_mb = path.stat().st_size / 1e6
            first = timed_check(path)
            median = statistics.median(timed_check(path) for _ in range(3))
        say(f"{n:>8} {size_mb:>8.0f} {first:>8.3f} {median:>9.3f}")
        rows.append({"images": n, "file_mb": round(size_mb, 1), "first_s": first, "median_s": median})
    record("catalog_check_bench", " ".join(sys.argv), env, say.lines, {"rows": rows})


if __name__ == "__main__":
    main()
