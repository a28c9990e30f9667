"""Frames/s and crops/s of traffic-frame ingest (detection + cutting + embedding) beside whole-frame ingest, same run.

    python bench/frames_bench.py                         # 24 drawn 1280x720 frames, 4 cars each, ViT-B-32-256
    python bench/frames_bench.py --n 8 --model tiny      # a quick look with a tiny CLIP
    python bench/frames_bench.py --detector fasterrcnn_mobilenet_v3_large_320_fpn ssdlite320_mobilenet_v3_large

Every run ingests the same folder into a fresh home. Four rows per detector:

- ``whole frames``: ``carmatch ingest FOLDER`` (the reference: one vector per frame);
- ``--boxes FILE``: the cars' known boxes from a COCO file, cut out and embedded (no detector);
- ``detector only``: the detector over every frame, nothing stored (its frames/s is the figure docs/traffic.md quotes);
- ``--cars``: detection + cutting + embedding, end to end.

Detectors and CLIP have carmatch's seeded random weights (nothing is downloaded): the same arithmetic per frame
as the COCO / pretrained weights, so the speed holds; the random detector's boxes mean nothing, so ``--cars``
keeps its top cars by score (``--keep``), as many as the drawn frames hold, to embed as many crops as real
weights would find. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageDraw  # noqa: E402

from bench.environment import Printer, describe, environment, record  # noqa: E402
from carmatch.config import load_settings  # noqa: E402
from carmatch.ingest.boxes import read_box_file  # noqa: E402
from carmatch.ingest.detector import DetectorSettings, TorchvisionDetector, load_detector  # noqa: E402
from carmatch.ingest.frames import FrameIngestor  # noqa: E402
from carmatch.runtime import Runtime  # noqa: E402

TINY = '{"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, \
"patch_size": 8}, "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}'


def draw_frames(folder: Path, n: int, cars: int, size: tuple[int, int]) -> Path:
    """``n`` JPEG frames of a grey road with ``cars`` coloured car-sized boxes each; returns their COCO file."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    images, annotations = [], []
    for i in range(n):
        frame = Image.new("RGB", size, (105, 105, 110))
        draw = ImageDraw.Draw(frame)
        lane = size[0] // cars
        for c in range(cars):
            w, h = rng.randrange(120, 260), rng.randrange(80, 160)
            x = c * lane + rng.randrange(0, max(1, lane - w))
            y = rng.randrange(size[1] // 3, size[1] - h)
            draw.rectangle((x, y, x + w - 1, y + h - 1), fill=tuple(rng.randrange(256) for _ in range(3)))
            draw.ellipse((x + 10, y + h - 25, x + 40, y + h + 5), fill=(15, 15, 15))
            annotations.append({"image_id": i, "bbox": [x, y, w, h], "category_id": 3})
        name = f"frame_{i:05d}.jpg"
        frame.save(folder / name, quality=90)
        images.append({"id": i, "file_name": name, "width": size[0], "height": size[1]})
    coco = folder.parent / "boxes.json"
    coco.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 3, "name": "car"}]})
    )
    return coco


class TopCars:
    """A random-weight detector's top ``keep`` boxes per frame, whatever their score (see the module doc)."""

    def __init__(self, detector: TorchvisionDetector, keep: int):
        import torch

        self.inner, self.keep, self.name = detector, keep, detector.name
        heads = getattr(detector.model, "roi_heads", None)
        if heads is not None:  # Faster R-CNN: let random scores through, "car" winning
            heads.score_thresh = 0.0
            with torch.no_grad():
                heads.box_predictor.cls_score.bias[3] += 6.0
        elif hasattr(detector.model, "score_thresh"):  # SSD: its random boxes' labels fall where they may
            detector.model.score_thresh = 0.0

    def detect(self, images: list[Image.Image]) -> list:
        return [found[: self.keep] for found in self.inner.detect(images)]


def fresh_runtime(home: Path) -> Runtime:
    runtime = Runtime(load_settings().with_overrides(home=home))
    runtime.embedder  # noqa: B018  # the model load is not ingest time
    return runtime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="frames")
    parser.add_argument("--cars", type=int, default=4, help="cars drawn per frame")
    parser.add_argument("--size", type=int, nargs=2, default=[1280, 720], metavar=("W", "H"))
    parser.add_argument("--model", default="ViT-B-32-256", help="open_clip model, or tiny")
    parser.add_argument("--detector", nargs="+", default=["fasterrcnn_mobilenet_v3_large_fpn"])
    args = parser.parse_args(argv)
    out = Printer()
    env = environment()
    out(describe(env))
    work = Path(tempfile.mkdtemp(prefix="carmatch-frames-bench-"))
    coco = draw_frames(work / "frames", args.n, args.cars, tuple(args.size))
    folder = work / "frames"
    model = args.model
    if model == "tiny":
        (work / "tiny.json").write_text(TINY)
        model = str(work / "tiny.json")
    os.environ.update({"CARMATCH_MODEL": model, "CARMATCH_PRETRAINED": "none", "CARMATCH_DEVICE": "cpu"})
    out(f"{args.n} frames of {args.size[0]}x{args.size[1]}, {args.cars} cars each; CLIP {args.model} (random weights)")
    data: dict[str, dict[str, float]] = {}

    def row(label: str, seconds: float, crops: int) -> None:
        data[label] = {"seconds": seconds, "frames_per_s": args.n / seconds, "crops_per_s": crops / seconds}
        crop_rate = f"{crops / seconds:7.2f} crops/s" if crops else " " * 15
        out(f"{label:<52} {args.n / seconds:7.2f} frames/s  {crop_rate}  ({crops} crops, {seconds:.1f} s)")

    runtime = fresh_runtime(work / "home-whole")
    start = time.perf_counter()
    runtime.ingestor().ingest_folder(folder)
    row("whole frames (reference)", time.perf_counter() - start, 0)
    runtime.close()

    runtime = fresh_runtime(work / "home-boxes")
    start = time.perf_counter()
    report = FrameIngestor(runtime.ingestor(), runtime.settings.crops_dir, box_file=read_box_file(coco)).ingest_folder(
        folder
    )
    row("--boxes FILE: cut + embed", time.perf_counter() - start, report.crops)
    runtime.close()

    frames = [Image.open(p).convert("RGB") for p in sorted(folder.glob("*.jpg"))]
    for name in args.detector:
        detector = load_detector(DetectorSettings(name, min_score=0.0, min_side=16), pretrained=False)
        detector.detect(frames[:1])  # first call: allocations, not steady speed
        start = time.perf_counter()
        for i in range(0, len(frames), 4):
            detector.detect(frames[i : i + 4])
        row(f"{name}: detector only", time.perf_counter() - start, 0)
        runtime = fresh_runtime(work / f"home-{name}")
        cars = TopCars(detector, args.cars)
        start = time.perf_counter()
        report = FrameIngestor(runtime.ingestor(), runtime.settings.crops_dir, detector=cars).ingest_folder(folder)  # type: ignore[arg-type]
        row(f"{name}: --cars detect + cut + embed", time.perf_counter() - start, report.crops)
        runtime.close()
    command = "python bench/frames_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"wrote {record('frames_bench', command.strip(), env, out.lines, data)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
