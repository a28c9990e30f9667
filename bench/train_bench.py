"""Fine-tuning throughput: carmatch's real ``train`` path beside open_clip_train on the same photos and captions.

Usage: python bench/train_bench.py [--model tiny|ViT-B-32-256] [--pairs 256] [--batch-size 32]
       [--photo 1280x960] [--repeats 3] [--workers -1] [--ref-workers 1] [--unfreeze -1] [--compare LABEL=PATH ...]

Draws ``--pairs`` JPEG photos (noisy, so they decode like photos) with distinct captions, then, repeated
and interleaved, runs each trainer for 2 epochs in its own process with random weights
(``pretrained`` none: speed does not depend on the weights), the whole model trainable, fp32, gradient
clipping 1.0, on the CPU unless ``--device cuda``:

- carmatch: a run folder (config.json + pairs.jsonl) trained by ``carmatch.training.loop.Trainer``
  exactly as ``carmatch train`` does (caption views, the multi-positive loss, its loading);
- open_clip_train: ``open_clip_train.main.main`` on a CSV of the same pairs (``--workers`` =
  ``--ref-workers``), when it is importable; skipped with a note otherwise;
- with ``--compare LABEL=PATH`` (e.g. an earlier carmatch: ``git archive HEAD~5 carmatch | tar -x -C PATH``)
  that carmatch too, under LABEL.

Each process times its second epoch (the first warms up allocations and caches): pairs/s = pairs
trained in that epoch / its wall time, so validation and checkpoints are not counted. Prints min and
median per trainer, their ratio to open_clip_train measured in the same run, and the load average.
Never asserted by tests.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
COLORS = ("red", "blue", "green", "white", "black", "silver", "yellow", "grey")
BODIES = ("sedan", "pickup truck", "suv", "van", "hatchback", "coupe", "wagon", "convertible")
PLACES = ("on a gravel road", "in a parking lot", "beside a house", "on a highway", "in the rain", "at night")
EVAL_PAIRS = 2  # validation and test pairs each: the fewest a carmatch run accepts


def draw_photos(folder: Path, count: int, width: int, height: int) -> list[tuple[str, str]]:
    """``count`` noisy JPEG photos with a caption each: (path, caption)."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    pairs = []
    for i in range(count):
        base = rng.integers(60, 200, size=(24, 32, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((width, height), Image.Resampling.BICUBIC)
        draw = ImageDraw.Draw(image)
        for _ in range(12):
            x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
            box = [x, y, x + int(rng.integers(20, width // 3)), y + int(rng.integers(20, height // 3))]
            draw.rectangle(box, fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 6, size=(height, width, 3))
        path = folder / f"car_{i:05d}.jpg"
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(path, quality=90)
        words = random.Random(i)
        caption = f"a {words.choice(COLORS)} {words.choice(BODIES)} {words.choice(PLACES)}, photo number {i}"
        pairs.append((str(path), caption))
    return pairs


def model_arguments(model: str, folder: Path) -> str:
    """The model as both trainers take it: ``tiny`` becomes a config JSON in ``folder``."""
    if model != "tiny":
        return model
    config = folder / "tiny-clip.json"
    config.write_text(json.dumps(TINY_CONFIG))
    return str(config)


def write_run(folder: Path, pairs: list[tuple[str, str]], model: str, args: argparse.Namespace) -> Path:
    """A carmatch run folder: config.json and pairs.jsonl (every pair trains but 2 + 2 held out)."""
    sys.path.insert(0, str(ROOT))
    from carmatch.training.config import TrainConfig

    folder.mkdir(parents=True)
    config = TrainConfig(model=model, pretrained="none", epochs=2, batch_size=args.batch_size, unfreeze=args.unfreeze)
    config.device, config.precision, config.num_workers = args.device, "fp32", args.workers
    config.warmup_steps, config.checkpoint_minutes = 1, 24 * 60
    (folder / "config.json").write_text(json.dumps(asdict(config)))
    splits = ["validation"] * EVAL_PAIRS + ["test"] * EVAL_PAIRS + ["train"] * (len(pairs) - 2 * EVAL_PAIRS)
    with open(folder / "pairs.jsonl", "w", encoding="utf-8") as fh:
        for i, ((path, caption), split) in enumerate(zip(pairs, splits, strict=True)):
            fh.write(json.dumps({"image_id": f"{i:064x}", "path": path, "caption": caption, "split": split}) + "\n")
    return folder


def time_carmatch(run_dir: Path, code_root: Path) -> dict:
    """Train the run; the second epoch's pairs/s (in this process)."""
    sys.path.insert(0, str(code_root))
    from carmatch.training.loop import Trainer

    class Timed(Trainer):
        def _train_epoch(self, s, state, clock):  # type: ignore[no-untyped-def]
            start, steps = time.perf_counter(), state["step"]
            super()._train_epoch(s, state, clock)
            seconds.append(time.perf_counter() - start)
            pairs.append((state["step"] - steps) * self.config.batch_size * self.config.accum_steps)

    seconds: list[float] = []
    pairs: list[int] = []
    Timed(run_dir).run()
    return {"pairs_per_s": pairs[-1] / seconds[-1], "pairs": pairs[-1]}


def time_open_clip_train(csv: Path, model: str, logs: Path, args: argparse.Namespace) -> dict:
    """Run open_clip_train's main on the CSV for 2 epochs; the second epoch's pairs/s (in this process)."""
    import open_clip
    import open_clip_train.main as reference

    if model.endswith(".json"):
        open_clip.add_model_config(model)
        model = Path(model).stem
    epoch_train = reference.train_one_epoch
    seconds: list[float] = []
    pairs: list[int] = []

    def timed(model_, data, *rest, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        epoch_train(model_, data, *rest, **kwargs)
        seconds.append(time.perf_counter() - start)
        pairs.append(data["train"].dataloader.num_batches * args.batch_size)

    reference.train_one_epoch = timed
    argv = ["--train-data", str(csv), "--dataset-type", "csv", "--csv-separator", "\t", "--model", model]
    argv += ["--batch-size", str(args.batch_size), "--epochs", "2", "--lr", "1e-5", "--wd", "0.1", "--warmup", "1"]
    argv += ["--precision", "fp32", "--workers", str(args.ref_workers), "--grad-clip-norm", "1.0"]
    argv += ["--device", args.device, "--save-frequency", "0", "--logs", str(logs), "--name", "bench"]
    argv += ["--log-every-n-steps", "1000", "--report-to", ""]
    reference.main(argv)
    return {"pairs_per_s": pairs[-1] / seconds[-1], "pairs": pairs[-1]}


def run_one(kind: str, spec: dict) -> dict:
    """Run one trainer in a fresh process; its JSON result."""
    cmd = [sys.executable, __file__, "--one", kind, json.dumps(spec)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def one(kind: str, spec: dict) -> dict:
    """The body of a ``--one`` process."""
    args = argparse.Namespace(**spec["args"])
    if kind == "open_clip_train":
        return time_open_clip_train(Path(spec["csv"]), spec["model"], Path(spec["logs"]), args)
    return time_carmatch(Path(spec["run"]), Path(spec["root"]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny (the test model) or an open_clip name")
    parser.add_argument("--pairs", type=int, default=256, help="training pairs per epoch (plus 4 held out)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--photo", default="1280x960", help="drawn photo size, WxH")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=-1, help="carmatch num_workers (-1: its default)")
    parser.add_argument("--ref-workers", type=int, default=1, help="open_clip_train --workers")
    parser.add_argument("--unfreeze", type=int, default=-1, help="carmatch --unfreeze (open_clip_train trains all)")
    parser.add_argument("--compare", action="append", default=[], help="LABEL=PATH: also time the carmatch at PATH")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def reference_available() -> bool:
    """Whether open_clip_train can be imported here."""
    try:
        import open_clip_train.main  # noqa: F401
    except ImportError:
        return False
    return True


def report(results: dict[str, list[float]], reference: str | None) -> None:
    """Min and median pairs/s per trainer and their ratio to the reference's."""
    ref = results.get(reference or "", [])
    print(f"{'trainer':18} {'min':>8} {'median':>8} {'best':>8}  pairs/s   median ratio")
    for name, values in results.items():
        median = statistics.median(values)
        ratio = f"{median / statistics.median(ref):.2f}x" if ref else "-"
        print(f"{name:18} {min(values):8.3g} {median:8.3g} {max(values):8.3g}            {ratio}")


def main(argv: list[str] | None = None) -> int:
    """Draw the photos, run the trainers interleaved, print the table."""
    args = parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one[0], json.loads(args.one[1]))))
        return 0
    width, height = (int(v) for v in args.photo.lower().split("x"))
    trainers = {"carmatch": ROOT}
    for compare in args.compare:
        label, _, path = compare.partition("=")
        trainers[label] = Path(path).resolve()
    reference = "open_clip_train" if reference_available() else None
    if reference is None:
        print("open_clip_train is not importable here: no reference (pip install open_clip_torch[training])")
    with tempfile.TemporaryDirectory(prefix="carmatch-train-bench-") as tmp:
        folder = Path(tmp)
        (folder / "photos").mkdir()
        pairs = draw_photos(folder / "photos", args.pairs + 2 * EVAL_PAIRS, width, height)
        model = model_arguments(args.model, folder)
        csv = folder / "train.csv"
        lines = [f"{path}\t{caption}" for path, caption in pairs[2 * EVAL_PAIRS :]]
        csv.write_text("filepath\ttitle\n" + "\n".join(lines) + "\n", encoding="utf-8")
        results: dict[str, list[float]] = {name: [] for name in [*trainers, *([reference] if reference else [])]}
        load_before = os.getloadavg()
        for repeat in range(args.repeats):
            for name in results:
                spec = {"args": vars(args) | {"compare": []}, "model": model, "csv": str(csv)}
                slot = f"{repeat}-{list(results).index(name)}"
                spec |= {"logs": str(folder / f"logs-{slot}")}
                if name != reference:
                    spec |= {"run": str(write_run(folder / f"run-{slot}", pairs, model, args))}
                    spec |= {"root": str(trainers[name])}
                result = run_one("open_clip_train" if name == reference else "carmatch", spec)
                results[name].append(result["pairs_per_s"])
                print(f"repeat {repeat + 1}: {name:18} {result['pairs_per_s']:8.3g} pairs/s ({result['pairs']} pairs)")
                sys.stdout.flush()
        load_after = os.getloadavg()
    print(f"\n{args.model}, batch {args.batch_size}, fp32, {args.pairs} pairs of {args.photo} JPEGs, {args.device}")
    report(results, reference)
    print(f"carmatch num_workers {args.workers}, open_clip_train --workers {args.ref_workers}; {os.cpu_count()} CPUs")
    if args.unfreeze != -1:
        print(f"carmatch trains the last {args.unfreeze} blocks, open_clip_train all: the ratio is not like for like")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
