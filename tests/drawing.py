"""Draw simple car pictures for tests: coloured body shapes with wheels on a plain background."""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

from PIL import Image, ImageDraw

COLORS = {
    "red": (200, 30, 30),
    "blue": (30, 60, 200),
    "green": (40, 160, 60),
    "yellow": (230, 200, 40),
    "black": (20, 20, 20),
    "white": (240, 240, 240),
}
BODIES = ("sedan", "pickup", "van")


def draw_car(color: str = "red", body: str = "sedan", size: tuple[int, int] = (96, 64), seed: int = 0) -> Image.Image:
    """A car-like drawing: ``body`` shape in ``color``, jittered by ``seed``."""
    rng = random.Random(seed)
    w, h = size
    bg = tuple(rng.randint(90, 170) for _ in range(3))
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    fill = tuple(max(0, min(255, c + rng.randint(-15, 15))) for c in COLORS[color])
    x0 = int(w * 0.1) + rng.randint(-3, 3)
    x1 = int(w * 0.9) + rng.randint(-3, 3)
    base = int(h * 0.75)
    if body == "sedan":
        d.rectangle([x0, int(h * 0.45), x1, base], fill=fill)
        top, bottom = h * 0.25, h * 0.45
        roof = [(x0 + w * 0.2, bottom), (x0 + w * 0.3, top), (x1 - w * 0.25, top), (x1 - w * 0.15, bottom)]
        d.polygon(roof, fill=fill)
    elif body == "pickup":
        d.rectangle([x0, int(h * 0.5), x1, base], fill=fill)
        d.rectangle([x0, int(h * 0.25), int(x0 + (x1 - x0) * 0.45), int(h * 0.5)], fill=fill)
    else:  # van
        d.rectangle([x0, int(h * 0.2), x1, base], fill=fill)
    r = max(3, h // 9)
    for cx in (x0 + (x1 - x0) * 0.2, x1 - (x1 - x0) * 0.2):
        d.ellipse([cx - r, base - r, cx + r, base + r], fill=(10, 10, 10))
    return img


def save_car(path: Path, color: str = "red", body: str = "sedan", seed: int = 0, fmt: str | None = None) -> Path:
    """Draw a car and save it to ``path`` (format from the extension unless given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_car(color, body, seed=seed).save(path, format=fmt)
    return path


def png_claiming(width: int, height: int) -> bytes:
    """A few-byte PNG whose header claims ``width`` x ``height`` pixels (its pixel data is a stub)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
