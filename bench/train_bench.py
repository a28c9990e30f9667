"""Training throughput: pairs/s and peak memory of carmatch's fine-tuning step, tiny model and ViT-B-32-256.

Usage: python bench/train_bench.py [--device cpu|cuda] [--batch-size 32] [--threads N]

Each configuration runs in its own process (so peak memory is its own) with random weights
(pretrained=none: speed does not depend on the weights) on random 3×S×S images and captions of
typical length. One step = forward of both towers, CLIP loss, backward, gradient clipping and
AdamW, exactly the operations of ``carmatch.training.loop``. Prints a table and the expected time for
10k pairs × 5 epochs. Never asserted by tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
CAPTION = "a red pickup truck with a black roof parked on a gravel road, seen from the front left"


def measure(model_name: str, unfreeze: int, batch_size: int, device: str, steps: int, threads: int) -> dict:
    """Time ``steps`` training steps (after one warm-up step) in this process."""
    import torch
    from open_clip.loss import ClipLoss

    sys.path.insert(0, str(ROOT))
    from carmatch.search.embedder import load_clip
    from carmatch.training.config import freeze_all_but_last, resolve_precision

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    embedder = load_clip(model_name, "none", device)
    model = embedder.model
    trainable, total = freeze_all_but_last(model, unfreeze)
    model.train()
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    precision = resolve_precision("auto", device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    loss_fn = ClipLoss()
    images = torch.randn(batch_size, 3, size, size, device=device)
    tokens = embedder.tokenizer([CAPTION] * batch_size).to(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    def step() -> None:
        with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            loss = loss_fn(
                model.encode_image(images, normalize=True),
                model.encode_text(tokens, normalize=True),
                model.logit_scale.exp(),
            )
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: allocations, kernel selection
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak_mb = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.startswith("cuda")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "model": Path(model_name).stem if model_name.endswith(".json") else model_name,
        "unfreeze": unfreeze,
        "trainable_m": trainable / 1e6,
        "params_m": total / 1e6,
        "batch": batch_size,
        "device": device if device == "cpu" else torch.cuda.get_device_name(),
        "precision": precision,
        "pairs_per_s": batch_size * steps / seconds,
        "peak_mb": peak_mb,
        "threads": threads,
    }


def main() -> int:
    """Run every configuration in a subprocess and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "UNFREEZE", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        model, unfreeze, steps = args.one
        print(json.dumps(measure(model, int(unfreeze), args.batch_size, args.device, int(steps), args.threads)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tiny = Path(tmp) / "tiny-clip.json"
        tiny.write_text(json.dumps(TINY_CONFIG))
        gpu = args.device.startswith("cuda")
        runs = [(str(tiny), -1, 50 if gpu else 20), ("ViT-B-32-256", 2, 20 if gpu else 3)]
        runs.append(("ViT-B-32-256", -1, 20 if gpu else 3))
        rows = []
        for model, unfreeze, steps in runs:
            cmd = [sys.executable, __file__, "--one", model, str(unfreeze), str(steps)]
            cmd += ["--device", args.device, "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            if out.returncode != 0:
                print(out.stderr[-2000:], file=sys.stderr)
                return 1
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'model':14} {'unfreeze':>8} {'trainable':>10} {'batch':>5} {'pairs/s':>8} {'peak MB':>8}  10k×5 epochs")
    for r in rows:
        hours = 10_000 * 5 / r["pairs_per_s"] / 3600
        eta = f"{hours:.1f} h" if hours >= 1 else f"{math.ceil(hours * 60)} min"
        label = "all" if r["unfreeze"] < 0 else str(r["unfreeze"])
        print(
            f"{r['model']:14} {label:>8} {r['trainable_m']:>8.1f} M {r['batch']:>5} {r['pairs_per_s']:>8.1f} "
            f"{r['peak_mb']:>8.0f}  {eta}"
        )
    print(f"device: {rows[0]['device']} ({rows[0]['precision']}, {rows[0]['threads']} threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
