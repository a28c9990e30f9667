"""Partial-description quality on held-out attribute combinations: base vs caption recipes, drawn cars, tiny CLIP.

Usage: python bench/attribute_bench.py [--seeds 15] [--epochs 15] [--width 64 --layers 2] [--repeats 3]
       [--first-seed 0] [--recipes 1,2] (recipe numbers in the order of RECIPES)

Data: tests/drawing.py cars, 6 colours × 3 bodies × ``--seeds`` drawings. Each caption is a whole
sentence (colour, body and a random scene phrase: "a red van parked on a gravel road at dusk"); the
attributes are the colour and body type. Three combinations — red pickups, blue vans, yellow
sedans — are held out: none of their images is trained on, all of them are in the test split.
Of the other combinations one drawing in five is test, one validation, the rest train.

Model: the tests' tiny open_clip config (embed 32, 2+2 layers of width 64, 32 px images) with
seeded random weights; ``--width 128 --layers 4`` gives one about 8× larger. Each recipe trains
the same base with carmatch's Trainer (lr 2e-3, batch 16, CPU) and is scored on the test split:

* held-out P@5 / R@5: queries "a red pickup truck", "a blue van", "a yellow sedan";
* in-distribution P@5 / R@5: the colour+body queries of the trained combinations;
* full-caption text→image R@5: each test image's own caption.

Prints a table (mean ± standard deviation over the seeds; each run's scores go to stderr as it
finishes, so runs split over processes can be pooled). Never asserted by tests.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HELD_OUT = {("red", "pickup"), ("blue", "van"), ("yellow", "sedan")}
SCENES = (
    "parked on a quiet street",
    "in a parking lot at noon",
    "parked on a gravel road at dusk",
    "next to a brick wall",
    "driving past some trees",
    "outside a small shop",
    "on a wet road after rain",
    "in front of a garage",
)
RECIPES = {
    "full captions only": {"caption_views": "full", "hard_negatives": 0},
    "default (full,attributes + hard negatives)": {"caption_views": "full,attributes", "hard_negatives": 1},
    "full,attributes, no hard negatives": {"caption_views": "full,attributes", "hard_negatives": 0},
    "full:3,attributes:1 + hard negatives": {"caption_views": "full:3,attributes:1", "hard_negatives": 1},
    "attributes only": {"caption_views": "attributes", "hard_negatives": 1},
}


def draw_pairs(folder: Path, seeds: int) -> list[Any]:
    """The drawn cars as pairs with captions, attributes and the held-out split."""
    from carmatch.training.data import Pair
    from tests.drawing import BODIES, COLORS, save_car
    from tests.training_support import BODY_WORDS

    rng = random.Random(0)
    pairs = []
    for color in COLORS:
        for body in BODIES:
            for seed in range(seeds):
                path = save_car(folder / f"{color}_{body}_{seed}.png", color, body, seed=1000 * seed + len(pairs))
                split = "test" if (color, body) in HELD_OUT or seed % 5 == 0 else "train"
                split = "validation" if split == "train" and seed % 5 == 1 else split
                caption = f"a {color} {BODY_WORDS[body]} {rng.choice(SCENES)}"
                attributes = (("body_type", body), ("color", color))
                pairs.append(Pair(f"{color}-{body}-{seed}", str(path), caption, split, attributes))
    return pairs


def score(model: Any, preprocess: Any, tokenizer: Any, test: list[Any]) -> dict[str, float]:
    """Held-out and in-distribution colour+body P@5/R@5 and full-caption R@5 on the test split."""
    from carmatch.training.attributes import phrasable
    from carmatch.training.evaluation import embed_pairs, embed_texts, retrieval_metrics
    from carmatch.training.queries import build_queries, partial_metrics

    images, texts = embed_pairs(model, preprocess, tokenizer, test, "cpu")
    words = [phrasable(p.attributes) for p in test]
    queries = build_queries(words, [("color", "body_type")])
    held = [q for q in queries if (dict(q.words)["color"], _body(dict(q.words)["body_type"])) in HELD_OUT]
    seen = [q for q in queries if q not in held]
    out = {"full-caption R@5": retrieval_metrics(images, texts, [p.caption for p in test])["t2i_r5"]}
    for name, group in (("held-out", held), ("in-distribution", seen)):
        vecs = embed_texts(model, tokenizer, [q.text for q in group], "cpu")
        metrics = partial_metrics(images, vecs, group, words)
        out[f"{name} P@5"], out[f"{name} R@5"] = metrics["attr_p5"], metrics["attr_r5"]
        out[f"{name} queries"] = metrics["attr_queries"]
    return out


def _body(words: str) -> str:
    return {"pickup truck": "pickup"}.get(words, words)


def tiny_model(folder: Path, width: int, layers: int, seed: int) -> tuple[str, str]:
    """A tiny open_clip config and a checkpoint of its seeded random weights."""
    import open_clip
    import torch

    from carmatch.embedding.embedder import register_model_config

    config = {
        "embed_dim": 32 if width == 64 else width // 2,
        "vision_cfg": {"image_size": 32, "layers": layers, "width": width, "head_width": 32, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": width, "heads": 2, "layers": layers},
    }
    path = folder / f"bench-clip-{width}-{layers}.json"
    path.write_text(json.dumps(config))
    torch.manual_seed(seed)
    model = open_clip.create_model(register_model_config(str(path)))
    checkpoint = folder / f"bench-clip-{width}-{layers}-{seed}.pt"
    torch.save(model.state_dict(), checkpoint)
    return str(path), str(checkpoint)


def run_recipe(folder: Path, model: tuple[str, str], pairs: list[Any], recipe: dict, args: Any, seed: int) -> Any:
    """Train one recipe from the base and return the trained model (best epoch by validation)."""
    from carmatch.training.config import TrainConfig, create_run
    from carmatch.training.loop import Trainer

    config = TrainConfig(
        model=model[0],
        pretrained=model[1],
        epochs=args.epochs,
        batch_size=16,
        lr=2e-3,
        warmup_steps=2,
        weight_decay=0.0,
        device="cpu",
        seed=seed,
        **recipe,
    )
    run_dir = folder / f"run-{len(list(folder.glob('run-*')))}"
    create_run(run_dir, config, pairs)
    trainer = Trainer(run_dir)
    trainer.run()
    return trainer


def main() -> int:
    """Train each recipe ``--repeats`` times and print the mean scores beside the base model's."""
    import torch

    from carmatch.embedding.embedder import load_clip

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=15, help="drawings per colour × body (default 15)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="model/training seeds to average over")
    parser.add_argument("--first-seed", type=int, default=0, help="first model/training seed (default 0)")
    parser.add_argument("--recipes", help="comma-separated recipe numbers to run, 1-based (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = list(RECIPES)
    chosen = [names[int(n) - 1] for n in args.recipes.split(",")] if args.recipes else names
    rows: dict[str, list[dict[str, float]]] = {"base": [], **{name: [] for name in chosen}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pairs = draw_pairs(folder / "cars", args.seeds)
        test = [p for p in pairs if p.split == "test"]
        for seed in range(args.first_seed, args.first_seed + args.repeats):
            model = tiny_model(folder, args.width, args.layers, seed)
            base = load_clip(model[0], model[1], "cpu")
            rows["base"].append(score(base.model, base.preprocess, base.tokenizer, test))
            print(f"seed {seed} base: {rows['base'][-1]}", file=sys.stderr)
            for name in chosen:
                trainer = run_recipe(folder, model, pairs, RECIPES[name], args, seed)
                trained = load_clip(model[0], str(trainer.run_dir / "best.pt"), "cpu")
                rows[name].append(score(trained.model, trained.preprocess, trained.tokenizer, test))
                print(f"seed {seed} {name}: {rows[name][-1]}", file=sys.stderr)
    columns = list(rows["base"][0])
    held, seen = int(rows["base"][0]["held-out queries"]), int(rows["base"][0]["in-distribution queries"])
    print(f"{args.seeds * 18} drawn cars, {len(test)} in test; width {args.width}, {args.layers} layers")
    first, last = args.first_seed, args.first_seed + args.repeats - 1
    print(f"mean (± standard deviation) of seeds {first}-{last}; held-out {held}, in-distribution {seen} queries")
    shown = [c for c in columns if not c.endswith("queries")]
    print(f"| {'recipe':42} | " + " | ".join(f"{c:>19}" for c in shown) + " |")
    for name, results in rows.items():
        cells = [
            f"{statistics.mean(v):.3f} ± {statistics.pstdev(v):.3f}" for c in shown for v in [[r[c] for r in results]]
        ]
        print(f"| {name:42} | " + " | ".join(f"{cell:>19}" for cell in cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
