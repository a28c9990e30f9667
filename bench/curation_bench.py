"""Curation quality and speed: suspects recall on wrong-colour captions, the near-copy cosine, the map at 100k.

Usage: python bench/curation_bench.py [--seeds 12] [--epochs 6] [--noise 0.1] [--repeats 3]
       [--map-points 100000] [--dim 512] [--skip-map]

1. **Suspects.** tests/drawing.py cars, 6 colours x 3 bodies x ``--seeds`` drawings, each captioned
   "a red van parked on a quiet street" with attributes colour and body type. ``--noise`` of them
   (10 %) get a wrong colour in the caption *and* the attributes (they agree, as when Claude is
   wrong, so no contradiction gives them away). The tests' tiny open_clip (seeded random weights)
   is fine-tuned for ``--epochs`` on the noisy pairs with carmatch's Trainer, then
   :func:`carmatch.dataset.suspects.score_suspects` ranks every caption. Printed: the share of the
   wrong captions in the top 10 % of the list (recall), for the base and the fine-tuned model,
   beside the random baseline (10 %, and the mean of 1,000 shuffled lists).
2. **Near copies.** 40 of the drawings get three near copies each (JPEG quality 60, resized to 80 %,
   3 % cropped off each side); printed: the lowest cosine between a photo and its copies and the
   highest cosine between two different drawings (under the fine-tuned model), which bound the
   duplicate threshold.
3. **The map.** ``--map-points`` synthetic ``--dim``-d embeddings (bench/synthetic.py): time of
   the PCA projection, of downsampling to the drawn points and of building the Plotly figure
   (carmatch.ui.curation_figure) with them.

Never asserted by tests.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCENES = ("parked on a quiet street", "in a parking lot", "on a gravel road", "next to a brick wall", "outside a shop")


def noisy_pairs(folder: Path, seeds: int, noise: float, seed: int) -> tuple[list[Any], set[str]]:
    """The drawn cars as pairs, ``noise`` of them with a wrong colour (caption and attributes); the wrong ids."""
    from carmatch.dataset.training_set import split_of
    from carmatch.training.data import Pair
    from tests.drawing import BODIES, COLORS, save_car
    from tests.training_support import BODY_WORDS

    rng = random.Random(seed)
    cars = [(c, b, s) for c in COLORS for b in BODIES for s in range(seeds)]
    wrong = set(rng.sample(range(len(cars)), round(noise * len(cars))))
    pairs, wrong_ids = [], set()
    for n, (color, body, s) in enumerate(cars):
        path = folder / f"{color}_{body}_{s}.png"
        if not path.exists():
            save_car(path, color, body, seed=1000 * s + n)
        said = rng.choice([c for c in COLORS if c != color]) if n in wrong else color
        image_id = f"{color}-{body}-{s}"
        caption = f"a {said} {BODY_WORDS[body]} {rng.choice(SCENES)}"
        pairs.append(Pair(image_id, str(path), caption, split_of(image_id), (("body_type", body), ("color", said))))
        if n in wrong:
            wrong_ids.add(image_id)
    return pairs, wrong_ids


def records_of(pairs: list[Any]) -> list[Any]:
    """The pairs as catalog records (what suspects reads)."""
    from carmatch.catalog import ImageRecord

    return [
        ImageRecord(p.image_id, p.path, 96, 64, "", caption=p.caption, attributes=dict(p.attributes)) for p in pairs
    ]


def recall_at(order: list[str], wrong: set[str], share: float = 0.1) -> float:
    """Share of the wrong ids in the first ``share`` of ``order``."""
    top = set(order[: max(1, round(share * len(order)))])
    return len(top & wrong) / max(1, len(wrong))


def shuffled_recall(ids: list[str], wrong: set[str], seed: int, shuffles: int = 1000) -> float:
    """Mean top-10 % recall of ``shuffles`` random orders (an rng of its own, not the noise's)."""
    rng = random.Random(f"shuffle-{seed}")
    total = 0.0
    for _ in range(shuffles):
        order = list(ids)
        rng.shuffle(order)
        total += recall_at(order, wrong)
    return total / shuffles


def suspects_recall(model: Any, pairs: list[Any], wrong: set[str]) -> float:
    """Top-10 % recall of the suspects list under one open_clip model."""
    from carmatch.dataset.suspects import score_suspects
    from carmatch.training.evaluation import embed_pairs

    images, texts = embed_pairs(model.model, model.preprocess, model.tokenizer, pairs, "cpu")
    ranked = score_suspects(records_of(pairs), images, texts)
    return recall_at([s.image_id for s in ranked], wrong)


def fine_tune(folder: Path, model: tuple[str, str], pairs: list[Any], epochs: int, seed: int) -> Path:
    """A short fine-tune on the noisy pairs with carmatch's Trainer; the best checkpoint."""
    from carmatch.training.config import TrainConfig, create_run
    from carmatch.training.loop import Trainer

    config = TrainConfig(
        model=model[0],
        pretrained=model[1],
        epochs=epochs,
        batch_size=16,
        lr=2e-3,
        warmup_steps=2,
        weight_decay=0.0,
        device="cpu",
        seed=seed,
    )
    run_dir = folder / f"run-{seed}"
    create_run(run_dir, config, pairs)
    trainer = Trainer(run_dir)
    trainer.run()
    return trainer.run_dir / "best.pt"


def near_copies(folder: Path, pairs: list[Any], count: int) -> list[tuple[str, list[str]]]:
    """``count`` drawings with three near copies each: (original path, copy paths)."""
    from PIL import Image

    out = []
    for p in pairs[:count]:
        original = Image.open(p.path).convert("RGB")
        w, h = original.size
        stem = folder / Path(p.path).stem
        copies = [stem.with_suffix(".q60.jpg"), stem.with_suffix(".small.png"), stem.with_suffix(".crop.png")]
        original.save(copies[0], quality=60)
        original.resize((int(w * 0.8), int(h * 0.8))).save(copies[1])
        dx, dy = max(1, w * 3 // 100), max(1, h * 3 // 100)
        original.crop((dx, dy, w - dx, h - dy)).save(copies[2])
        out.append((p.path, [str(c) for c in copies]))
    return out


def copy_cosines(model: Any, pairs: list[Any], copies: list[tuple[str, list[str]]]) -> tuple[float, float, float]:
    """Lowest photo-copy cosine, 1st percentile of them, and highest cosine between two different drawings."""
    from carmatch.images import load_image

    def embed(paths: list[str]) -> np.ndarray:
        return model.encode_images([load_image(path).image for path in paths])

    originals = embed([p.path for p in pairs])
    same = [float(embed([o])[0] @ c) for o, paths in copies for c in embed(paths)]
    sims = originals @ originals.T
    np.fill_diagonal(sims, -1)
    return min(same), float(np.percentile(same, 1)), float(sims.max())


def map_timings(points: int, dim: int) -> dict[str, float]:
    """Seconds to project, downsample and draw a map of ``points`` synthetic embeddings."""
    from bench.synthetic import clustered
    from carmatch.dataset.collection_map import MAX_DRAWN_POINTS, downsample, project
    from carmatch.ui.curation_figure import map_figure

    vectors = clustered(points, dim, 0)
    start = time.perf_counter()
    xy = project(vectors)
    projected = time.perf_counter()
    drawn = downsample(points, MAX_DRAWN_POINTS)
    sampled = time.perf_counter()
    ids = [f"{i:064x}" for i in drawn]
    labels = [str(i % 7) for i in drawn]
    figure = map_figure(xy[drawn], ids, labels, [f"caption {i}" for i in drawn], "color", points)
    figure.to_json()
    drawn_at = time.perf_counter()
    return {"project": projected - start, "downsample": sampled - projected, "figure": drawn_at - sampled}


def main() -> int:
    """Run the three measurements and print them."""
    import torch

    from bench.attribute_bench import tiny_model
    from carmatch.embedding.embedder import load_clip

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=12, help="drawings per colour x body (default 12)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--noise", type=float, default=0.1, help="share of wrong-colour captions (default 0.1)")
    parser.add_argument("--repeats", type=int, default=3, help="noise/model seeds to average over")
    parser.add_argument("--map-points", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--skip-map", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows: dict[str, list[float]] = {
        "base model": [],
        "fine-tuned on the noisy pairs": [],
        "shuffled lists (mean of 1,000)": [],
    }
    bounds = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "cars").mkdir()
        for seed in range(args.repeats):
            pairs, wrong = noisy_pairs(folder / "cars", args.seeds, args.noise, seed)
            model = tiny_model(folder, 64, 2, seed)
            rows["base model"].append(suspects_recall(load_clip(model[0], model[1], "cpu"), pairs, wrong))
            tuned = load_clip(model[0], str(fine_tune(folder, model, pairs, args.epochs, seed)), "cpu")
            rows["fine-tuned on the noisy pairs"].append(suspects_recall(tuned, pairs, wrong))
            rows["shuffled lists (mean of 1,000)"].append(shuffled_recall([p.image_id for p in pairs], wrong, seed))
            copies = near_copies(folder, pairs, 40)
            bounds.append(copy_cosines(tuned, pairs, copies))
            print(f"seed {seed}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in rows.items()), file=sys.stderr)
    n = 18 * args.seeds
    print(f"{n} drawn cars, {args.noise:.0%} wrong-colour captions, {args.epochs} epochs, {args.repeats} seeds")
    print("| ranking | wrong captions in the top 10 % (mean ± sd) |")
    print("| --- | --- |")
    print(f"| random (expected) | {0.1:.2f} |")
    for name, values in rows.items():
        print(f"| {name} | {statistics.mean(values):.2f} ± {statistics.pstdev(values):.2f} |")
    low = min(b[0] for b in bounds)
    print(f"near copies: lowest photo-copy cosine {low:.4f} (1st percentile {min(b[1] for b in bounds):.4f}); ")
    print(f"highest cosine between two different drawings {max(b[2] for b in bounds):.4f}")
    if not args.skip_map:
        t = map_timings(args.map_points, args.dim)
        print(
            f"map of {args.map_points:,} x {args.dim}-d: PCA {t['project']:.2f} s, downsample {t['downsample']:.3f} s, "
            f"Plotly figure of the drawn points {t['figure']:.2f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
