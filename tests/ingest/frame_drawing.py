"""Drawn traffic frames: several drawn cars pasted at known boxes on a grey road."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from tests.drawing import draw_car

ROAD = (110, 110, 115)
# frame file -> the cars on it: (colour, body, box x0, y0, x1, y1)
FRAMES: dict[str, list[tuple[str, str, tuple[int, int, int, int]]]] = {
    "cam1/f001.png": [
        ("red", "sedan", (10, 20, 106, 84)),
        ("blue", "van", (150, 30, 246, 94)),
        ("yellow", "pickup", (60, 120, 156, 184)),
    ],
    "cam2/f002.png": [
        ("green", "sedan", (200, 100, 296, 164)),
        ("white", "van", (20, 110, 116, 174)),
    ],
    "cam2/empty.png": [],  # a road with no car: stays a whole image
}
FRAME_SIZE = (320, 200)


def draw_frame(cars: list[tuple[str, str, tuple[int, int, int, int]]], seed: int = 0) -> Image.Image:
    """A frame with each car drawn to fill its box."""
    frame = Image.new("RGB", FRAME_SIZE, ROAD)
    for n, (color, body, (x0, y0, x1, y1)) in enumerate(cars):
        frame.paste(draw_car(color, body, size=(x1 - x0, y1 - y0), seed=seed + n), (x0, y0))
    return frame


def draw_frames(root: Path) -> Path:
    """Write :data:`FRAMES` under ``root``."""
    for n, (name, cars) in enumerate(FRAMES.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        draw_frame(cars, seed=10 * n).save(path)
    return root


def coco_file(path: Path, extra: list[dict] | None = None) -> Path:
    """A COCO JSON file of :data:`FRAMES`' boxes (categories car/van as COCO names them: car, truck)."""
    images, annotations = [], []
    for n, (name, cars) in enumerate(FRAMES.items(), 1):
        images.append({"id": n, "file_name": name, "width": FRAME_SIZE[0], "height": FRAME_SIZE[1]})
        for _color, body, (x0, y0, x1, y1) in cars:
            category = 3 if body == "sedan" else 8
            annotations.append({"image_id": n, "bbox": [x0, y0, x1 - x0, y1 - y0], "category_id": category})
    annotations.extend(extra or [])
    categories = [{"id": 3, "name": "car"}, {"id": 8, "name": "truck"}, {"id": 1, "name": "person"}]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path
