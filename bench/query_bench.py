"""Single-query latency: carmatch's library search next to bare open_clip (torch) and rclip, same weights, one run.

    python bench/query_bench.py                                    # ViT-B-32-256, random weights
    python bench/query_bench.py --repeats 40 --rclip-path /tmp/rclip-src
    python bench/query_bench.py --model tiny.json                  # any open_clip model (rclip then skipped)
    python bench/query_bench.py --threads                          # also: ONNX Runtime thread settings compared

Set-up (not timed): the model with seeded random weights saved as a checkpoint, a carmatch home with
drawn cars indexed, and the same weights for every contender:
- carmatch: ``Runtime.search(text=...)`` / ``Runtime.search(image=path)`` (encode + index + catalog);
- torch: open_clip's ``encode_text(tokenizer([text]))`` / open + preprocess + ``encode_image``, torch defaults;
- rclip: rclip's ``Model.compute_text_features`` / ``compute_image_features`` (its tokenizer, preprocessing
  and ONNX Runtime settings) on ONNX files exported from these weights, when ``rclip`` is importable
  (``pip install --no-deps --target DIR rclip``, then ``--rclip-path DIR``); skipped with a note otherwise.
Repeats are interleaved (each round times every contender once, in rotating order), so all see the same
background load; it prints min and median per contender, the ratios of medians, and the load average.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TEXTS = [f"a {c} {b} parked on a street" for c in ("red", "blue", "white", "black") for b in ("sedan", "pickup", "van")]
RCLIP_LEGAL_FILES = ("LICENSE", "OPENAI-CLIP-MIT.txt", "README.md", "THIRD_PARTY_NOTICES.md")
RCLIP_MODEL_DIR = "ViT-B-32-256-datacomp_s34b_b86k"


def prepare(folder: Path, model: str, images: int) -> tuple[dict[str, str], str, list[Path]]:
    """A home with ``images`` drawn cars indexed by ``model`` (seeded random weights saved as a checkpoint)."""
    import open_clip
    import torch

    from bench.search_bench import make_photos
    from carmatch.config import load_settings
    from carmatch.embedding.embedder import register_model_config
    from carmatch.runtime import Runtime

    torch.manual_seed(0)
    checkpoint = folder / "weights.pt"
    torch.save(open_clip.create_model(register_model_config(model)).state_dict(), checkpoint)
    os.environ["CARMATCH_MODEL_CACHE"] = str(folder / "model-cache")  # where load_clip keeps hashes and ONNX towers
    env = {**os.environ, "CARMATCH_HOME": str(folder / "home"), "CARMATCH_MODEL": model}
    env.update(CARMATCH_PRETRAINED=str(checkpoint), CARMATCH_DEVICE="cpu")
    (folder / "photos").mkdir()
    photos = make_photos(folder / "photos", images)
    runtime = Runtime(load_settings(env))
    runtime.ingestor().ingest_folder(folder / "photos")
    runtime.close()
    return env, str(checkpoint), photos


def carmatch_contender(env: dict[str, str]) -> tuple[Callable[[str], object], Callable[[Path], object]]:
    """carmatch's library search, from a fresh Runtime (the model comes from the model cache)."""
    from carmatch.config import load_settings
    from carmatch.runtime import Runtime

    runtime = Runtime(load_settings(env))
    return (lambda text: runtime.search(text=text, k=12)), (lambda path: runtime.search(image=path, k=12))


def torch_contender(model: str, checkpoint: str) -> tuple[Callable[[str], object], Callable[[Path], object]]:
    """Bare open_clip on torch with its default thread count."""
    import open_clip
    import torch
    from PIL import Image

    from carmatch.embedding.embedder import register_model_config

    arch = register_model_config(model)
    clip, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=checkpoint)
    clip.eval()
    tokenizer = open_clip.get_tokenizer(arch)

    def text(query: str) -> object:
        with torch.inference_mode():
            return clip.encode_text(tokenizer([query]))

    def image(path: Path) -> object:
        with torch.inference_mode():
            return clip.encode_image(preprocess(Image.open(path).convert("RGB"))[None])

    return text, image


def rclip_contender(
    env: dict[str, str], folder: Path, rclip_path: str | None
) -> tuple[Callable[[str], object], Callable[[Path], object]] | str:
    """rclip's Model on ONNX files of the same weights; a note (str) when rclip cannot run here."""
    if rclip_path:
        sys.path.insert(0, rclip_path)
    try:
        from rclip.model import Model
    except ImportError as exc:
        return f"rclip not importable ({exc}); install it with pip install --no-deps --target DIR rclip, pass DIR"
    from PIL import Image

    from carmatch.config import load_settings
    from carmatch.embedding.clip_tokenizer import vocab_path
    from carmatch.runtime import Runtime

    embedder = Runtime(load_settings(env)).embedder
    towers = embedder.fast.towers if embedder.fast is not None else None
    if embedder.spec.arch != "ViT-B-32-256" or towers is None:
        return "rclip skipped: it runs ViT-B-32-256 only, from ONNX files (none exported for this model)"
    datadir = folder / "rclip"
    (datadir / RCLIP_MODEL_DIR).mkdir(parents=True)
    (datadir / "tokenizer").mkdir()
    shutil.copy(towers.folder / "text.onnx", datadir / RCLIP_MODEL_DIR / "textual.onnx")
    shutil.copy(towers.folder / "image.onnx", datadir / RCLIP_MODEL_DIR / "visual.onnx")
    shutil.copy(str(vocab_path()), datadir / "tokenizer" / "bpe_simple_vocab_16e6.txt.gz")
    for name in RCLIP_LEGAL_FILES:
        (datadir / name).write_text("placeholder: the weights are carmatch's random ones\n")
    os.environ["RCLIP_DATADIR"] = str(datadir)
    model = Model()
    return (lambda text: model.compute_text_features([text])), (
        lambda path: model.compute_image_features([Image.open(path).convert("RGB")])
    )


def thread_settings(env: dict[str, str], photos: list[Path], repeats: int) -> None:
    """ONNX Runtime sessions of the same towers with 1 thread, 2 spinning threads, 2 sleeping threads, interleaved."""
    import numpy as np
    import onnxruntime as ort
    from PIL import Image

    from carmatch.config import load_settings
    from carmatch.embedding.onnx_towers import open_session, preprocess_image
    from carmatch.runtime import Runtime

    embedder = Runtime(load_settings(env)).embedder
    if embedder.fast is None or embedder.fast.towers is None or embedder.fast.tokenizer is None:
        print("thread settings skipped: no ONNX towers for this model")
        return
    folder, tokenizer, params = embedder.fast.towers.folder, embedder.fast.tokenizer, embedder.fast.preprocess
    spinning = {}
    for name in ("text.onnx", "image.onnx"):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        spinning[name] = ort.InferenceSession(str(folder / name), options, providers=["CPUExecutionProvider"])
    settings = {
        "1 thread": {name: open_session(folder / name, 1) for name in spinning},
        "2 spinning": spinning,
        "2 sleeping": {name: open_session(folder / name, 2) for name in spinning},
    }
    tokens = tokenizer(["a red pickup parked on a street"])
    pixels = preprocess_image(Image.open(photos[0]).convert("RGB"), params or {})[None]
    times: dict[str, list[float]] = {f"{label} {kind}": [] for label in settings for kind in ("text", "image")}
    for _ in range(repeats):
        for label, sessions in settings.items():
            start = time.perf_counter()
            sessions["text.onnx"].run(None, {"input": tokens})
            middle = time.perf_counter()
            sessions["image.onnx"].run(None, {"input": np.asarray(pixels)})
            times[f"{label} text"].append(middle - start)
            times[f"{label} image"].append(time.perf_counter() - middle)
    print(f"ONNX Runtime threads, {repeats} interleaved rounds, load average {os.getloadavg()[0]:.2f}:")
    for key, samples in times.items():
        low, mid = summary(samples)
        print(f"  {key:17s} min {low:7.1f} ms  median {mid:7.1f} ms")


def summary(samples: list[float]) -> tuple[float, float]:
    """(min, median) in milliseconds."""
    return min(samples) * 1000, statistics.median(samples) * 1000


def run(contenders: dict[str, tuple[Callable, Callable]], photos: list[Path], repeats: int) -> dict[str, list[float]]:
    """Interleaved timings: every round times each contender's text and image query once, in rotating order."""
    times: dict[str, list[float]] = {f"{name} {kind}": [] for name in contenders for kind in ("text", "image")}
    names = list(contenders)
    for name in names:  # warm-up: the first query of each kind loads its tower
        contenders[name][0]("warm up")
        contenders[name][1](photos[0])
    for round_ in range(repeats):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            text, image = contenders[name]
            start = time.perf_counter()
            text(TEXTS[round_ % len(TEXTS)])
            middle = time.perf_counter()
            image(photos[round_ % len(photos)])
            times[f"{name} text"].append(middle - start)
            times[f"{name} image"].append(time.perf_counter() - middle)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B-32-256")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rclip-path", default=os.environ.get("RCLIP_PATH"), help="folder rclip is installed in")
    parser.add_argument("--threads", action="store_true", help="also compare ONNX Runtime thread settings")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env, checkpoint, photos = prepare(folder, args.model, args.images)
        contenders = {"carmatch": carmatch_contender(env), "torch": torch_contender(args.model, checkpoint)}
        found = rclip_contender(env, folder, args.rclip_path)
        if isinstance(found, str):
            print(found)
        else:
            contenders["rclip"] = found
        load_before = os.getloadavg()
        times = run(contenders, photos, args.repeats)
        load_after = os.getloadavg()
        if args.threads:
            thread_settings(env, photos, args.repeats)
    print(f"model {args.model}, random weights, CPU ({os.cpu_count()} cores), {args.repeats} interleaved rounds")
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    for key, samples in times.items():
        low, mid = summary(samples)
        print(f"{key:15s} min {low:7.1f} ms  median {mid:7.1f} ms")
    for kind in ("text", "image"):
        ours = summary(times[f"carmatch {kind}"])[1]
        for other in [name for name in contenders if name != "carmatch"]:
            ratio = ours / summary(times[f"{other} {kind}"])[1]
            print(f"{kind:5s} carmatch / {other}: {ratio:.2f}x median (target <= 1.00 against rclip)")


if __name__ == "__main__":
    main()
