"""Images/s of ingest: the local engine, then the Ray engine with 1 and 2 workers, in the same run.

    python bench/ray_bench.py                      # 160 drawn 640x480 JPEGs, ViT-B-32-256 (seeded random weights)
    python bench/ray_bench.py --n 64 --model tiny  # a quick look with a tiny model
    python bench/ray_bench.py --workers 1 2 4 --batch-size 32 64

Each run ingests the same folder into a fresh home (so every image is read, validated, decoded,
embedded, committed and indexed). The model is the real architecture with carmatch's seeded random
weights (``CARMATCH_PRETRAINED=none``): the same work per image as pretrained weights. Ray runs on a
local Ray started once (its start-up is printed apart); each Ray run's wall time includes starting
its actor pool (one model load per worker), and "first batch after" shows that start-up cost.
Nothing is asserted: on a 2-core machine Ray's worth is the same code on a cluster (docs/scale-out.md,
Running on a Ray cluster), not speed here.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageDraw  # noqa: E402

from carmatch.config import load_settings  # noqa: E402
from carmatch.runtime import Runtime  # noqa: E402

TINY = '{"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, \
"patch_size": 8}, "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}'


def draw_images(folder: Path, n: int, size: tuple[int, int] = (640, 480)) -> None:
    """``n`` distinct JPEGs of coloured boxes (a camera frame's size)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for i in range(n):
        image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        for _ in range(12):
            x, y = rng.randrange(size[0] - 60), rng.randrange(size[1] - 40)
            draw.rectangle(
                (x, y, x + rng.randrange(20, 200), y + rng.randrange(20, 120)), fill=(rng.randrange(256),) * 3
            )
        image.save(folder / f"frame_{i:05d}.jpg", quality=90)


def ingest_rate(
    env: dict[str, str], home: Path, folder: Path, engine: str, workers: int, batch: int
) -> tuple[float, float]:
    """(images/s over the whole run, seconds until the first batch was committed) of one ingest into ``home``."""
    os.environ.update(env)
    settings = load_settings().with_overrides(home=home, engine=engine, ray_workers=workers, ray_batch_size=batch)
    runtime = Runtime(settings)
    runtime.embedder  # noqa: B018  # the driver's model load is not ingest time
    first: list[float] = []
    start = time.perf_counter()

    def progress(done: int, total: int, message: str) -> None:
        if done and not first:
            first.append(time.perf_counter() - start)

    try:
        report = runtime.bulk_ingestor().ingest_folder(folder, progress=progress)
    finally:
        runtime.close()
    wall = time.perf_counter() - start
    assert report.embedded == report.seen, report.summary()
    return report.embedded / wall, first[0] if first else wall


def decode_rate(env: dict[str, str], home: Path, folder: Path) -> float:
    """Images/s one core reads, validates, decodes and transforms (a decode task's work, no embedding)."""
    import numpy as np

    from carmatch.ingest.ray_engine import decode_batch, make_plan

    os.environ.update(env)
    settings = load_settings().with_overrides(home=home)
    runtime = Runtime(settings)
    try:
        plan = make_plan(settings, runtime.embedder, {"CPU": 1})
    finally:
        runtime.close()
    paths = sorted(str(p) for p in folder.iterdir())
    batch = {
        "row": np.arange(len(paths)),
        "path": np.asarray(paths, dtype=object),
        "uri": np.asarray([""] * len(paths)),
    }
    start = time.perf_counter()
    decode_batch(batch, plan)
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=160, help="images to ingest per run")
    parser.add_argument("--model", default="ViT-B-32-256", help="open_clip model name, or 'tiny'")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray worker counts to run")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[64], help="CARMATCH_RAY_BATCH_SIZE values")
    args = parser.parse_args()

    import ray
    import torch

    with tempfile.TemporaryDirectory(prefix="ray-bench-") as tmp:
        root = Path(tmp)
        model = args.model
        if model == "tiny":
            (root / "tiny.json").write_text(TINY)
            model = str(root / "tiny.json")
        env = {"CARMATCH_MODEL": model, "CARMATCH_PRETRAINED": "none", "CARMATCH_DEVICE": "cpu"}
        env["CARMATCH_MODEL_CACHE"] = str(root / "model-cache")
        folder = root / "frames"
        draw_images(folder, args.n)
        cpus = os.cpu_count() or 1
        print(
            f"{args.n} JPEGs 640x480, {args.model} (random weights), {cpus} CPU(s), torch {torch.__version__}, "
            f"ray {ray.__version__}"
        )
        torch.set_num_threads(1)
        one_core = decode_rate(env, root / "home-decode", folder)
        torch.set_num_threads(cpus)
        print(f"decode only, one core             {one_core:7.1f} img/s   (read, validate, decode, transform)")
        local, local_first = ingest_rate(env, root / "home-local", folder, "local", 0, 32)
        print(f"local engine                      {local:7.1f} img/s   first batch after {local_first:5.1f} s")
        start = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
        print(f"local Ray start-up                {time.perf_counter() - start:7.1f} s")
        try:
            for batch in args.batch_size:
                for workers in args.workers:
                    home = root / f"home-ray-{workers}-{batch}"
                    rate, first = ingest_rate(env, home, folder, "ray", workers, batch)
                    print(
                        f"ray, {workers} worker(s), batch {batch:<4}      {rate:7.1f} img/s   "
                        f"first batch after {first:5.1f} s ({rate / local:.2f}x local)"
                    )
        finally:
            ray.shutdown()


if __name__ == "__main__":
    main()
