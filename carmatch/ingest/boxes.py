"""Boxes of cars in frames: the one box type, its checks, and the two file formats people have (COCO JSON, YOLO txt).

``carmatch ingest FOLDER --boxes FILE`` takes its boxes from here instead of running a detector. Every row
is checked on its own; a bad one (unknown file, zero size, outside the image, unreadable) is refused with
its reason and the rest are used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carmatch.errors import InvalidInputError

COCO_VEHICLE_NAMES = ("car", "truck", "bus", "motorcycle")  # a COCO file's categories kept when it names them


@dataclass(frozen=True)
class Box:
    """A box in pixels of its frame: ``x0, y0`` inclusive, ``x1, y1`` exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        """Width in pixels."""
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        """Height in pixels."""
        return self.y1 - self.y0

    def as_tuple(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)``."""
        return (self.x0, self.y0, self.x1, self.y1)

    def problem(self, width: int, height: int) -> str | None:
        """Why this box cannot be cropped from a ``width`` x ``height`` frame, or None when it can."""
        if self.width <= 0 or self.height <= 0:
            return f"zero size box {list(self.as_tuple())}"
        if self.x0 < 0 or self.y0 < 0 or self.x1 > width or self.y1 > height:
            return f"box {list(self.as_tuple())} is outside the {width}x{height} image"
        return None

    @classmethod
    def from_floats(cls, x0: float, y0: float, x1: float, y1: float) -> Box:
        """Round a detector's or a file's float corners to whole pixels (outward at the edges' halves)."""
        return cls(int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1)))


@dataclass(frozen=True)
class Detection:
    """One car found in a frame: its box, how sure the finder is (0-1) and what it called it."""

    box: Box
    score: float
    label: str | None = None


@dataclass
class BoxFile:
    """Boxes read from a file: per image key (path relative to the folder, or a YOLO stem), and refused rows."""

    source: str  # what produced the boxes, stored with every crop: "boxes:<file name>"
    boxes: dict[str, list[Detection]] = field(default_factory=dict)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (where in the file, why)
    normalized: dict[str, list[tuple[str, tuple[float, float, float, float], float, str | None]]] = field(
        default_factory=dict
    )  # YOLO rows in 0-1 units, turned into pixels once the image's size is known

    def for_image(self, rel_path: str, width: int, height: int) -> tuple[list[Detection], list[tuple[str, str]]]:
        """The checked boxes of one image and the rows refused for it (outside the image, zero size)."""
        key = self.key_of(rel_path)
        found: list[Detection] = []
        refused: list[tuple[str, str]] = []
        for where, (cx, cy, w, h), score, label in self.normalized.get(key, []):
            x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
            box = Box.from_floats(x0 * width, y0 * height, x1 * width, y1 * height)
            outside = not (0 <= x0 and x1 <= 1 and 0 <= y0 and y1 <= 1)
            if w <= 0 or h <= 0 or box.width <= 0 or box.height <= 0:
                refused.append((where, "zero size box"))
            elif outside:
                why = f"box is outside the image (centre {cx:g},{cy:g}, size {w:g}x{h:g} in 0-1 units)"
                refused.append((where, why))
            else:
                found.append(Detection(box, score, label))
        for n, det in enumerate(self.boxes.get(key, [])):
            problem = det.box.problem(width, height)
            if problem is None:
                found.append(det)
            else:
                refused.append((f"{rel_path} box {n + 1}", problem))
        return found, refused

    def key_of(self, rel_path: str) -> str:
        """The key the file knows an image by: its relative path without extension, else its bare stem, else
        the one key whose last part is that stem (a file naming images by absolute path or another root)."""
        key = _key(rel_path)
        if key in self.boxes or key in self.normalized:
            return key
        stem = Path(key).name
        if stem in self.boxes or stem in self.normalized:
            return stem
        tails = [k for k in self.keys() if Path(k).name == stem]
        return tails[0] if len(tails) == 1 else stem

    def keys(self) -> set[str]:
        """Every image key the file names."""
        return set(self.boxes) | set(self.normalized)


def _key(rel_path: str) -> str:
    """The key an image is known by in a box file: its relative path without the extension, with / separators."""
    path = Path(rel_path.replace("\\", "/"))
    return str(path.with_suffix("")).lstrip("./") if path.suffix else str(path)


def read_box_file(path: Path) -> BoxFile:
    """Read a COCO JSON file or a folder of YOLO ``.txt`` files; InvalidInputError when it is neither."""
    path = Path(path).expanduser()
    if path.is_dir():
        return read_yolo_folder(path)
    if path.suffix.lower() == ".json" and path.is_file():
        return read_coco(path)
    if path.suffix.lower() == ".txt" and path.is_file():
        found = BoxFile(f"boxes:{path.name}")
        _read_yolo_txt(path, path.stem, found)
        return found
    raise InvalidInputError(
        field="boxes",
        value=str(path),
        reason="must be a COCO JSON file (.json) or a folder of YOLO .txt files, one per image",
        label="The boxes file",
    )


def read_coco(path: Path) -> BoxFile:
    """Boxes of a COCO JSON file (``images`` + ``annotations``, ``bbox`` as x, y, width, height in pixels)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInputError(f"Cannot read the COCO file {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InvalidInputError(f"{path} is not a COCO file: it needs an 'images' list and an 'annotations' list.")
    found = BoxFile(f"boxes:{path.name}")
    names: dict[Any, str] = {}
    for n, image in enumerate(data["images"]):
        if isinstance(image, dict) and "id" in image and isinstance(image.get("file_name"), str):
            names[image["id"]] = image["file_name"]
        else:
            found.refused.append((f"images[{n}]", "needs an id and a file_name"))
    categories = {c.get("id"): str(c.get("name", "")) for c in data.get("categories", []) if isinstance(c, dict)}
    vehicle_ids = {cid for cid, name in categories.items() if name.lower() in COCO_VEHICLE_NAMES}
    for n, ann in enumerate(data.get("annotations") or []):
        where = f"annotations[{n}]"
        if not isinstance(ann, dict):
            found.refused.append((where, "not an object"))
            continue
        if vehicle_ids and ann.get("category_id") not in vehicle_ids:
            continue  # a full COCO file: people, lights and signs are not cars
        file_name = names.get(ann.get("image_id"))
        if file_name is None:
            found.refused.append((where, f"unknown image_id {ann.get('image_id')!r}"))
            continue
        bbox = ann.get("bbox")
        try:
            x, y, w, h = (float(v) for v in bbox)  # type: ignore[union-attr]
            score = float(ann.get("score", 1.0))
        except (TypeError, ValueError):
            found.refused.append((where, f"bbox must be four numbers [x, y, width, height], got {bbox!r}"))
            continue
        label = categories.get(ann.get("category_id")) or None
        found.boxes.setdefault(_key(file_name), []).append(Detection(Box.from_floats(x, y, x + w, y + h), score, label))
    return found


def read_yolo_folder(folder: Path) -> BoxFile:
    """Boxes of a folder of YOLO label files: ``<image stem>.txt``, rows ``class cx cy w h [conf]`` in 0-1 units."""
    found = BoxFile(f"boxes:{folder.name}")
    files = sorted(p for p in folder.rglob("*.txt") if p.name != "classes.txt")
    if not files:
        raise InvalidInputError(f"{folder} holds no YOLO .txt label files.")
    for txt in files:
        _read_yolo_txt(txt, str(txt.relative_to(folder).with_suffix("")), found)
    return found


def _read_yolo_txt(txt: Path, key: str, found: BoxFile) -> None:
    try:
        lines = txt.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        found.refused.append((txt.name, f"cannot read ({exc})"))
        return
    rows = found.normalized.setdefault(key.replace("\\", "/"), [])
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        where = f"{txt.name}:{n}"
        try:
            values = [float(v) for v in parts[1:]]
        except ValueError:
            found.refused.append((where, f"expected 'class cx cy w h [conf]', got {line.strip()!r}"))
            continue
        if len(values) not in (4, 5):
            found.refused.append((where, f"expected 'class cx cy w h [conf]', got {line.strip()!r}"))
            continue
        cx, cy, w, h = values[:4]
        rows.append((where, (cx, cy, w, h), values[4] if len(values) == 5 else 1.0, parts[0]))
