"""Boxes drawn on traffic frames: the chosen car outlined boldly, the frame's other cars faintly.

One drawing for everyone who shows a car in its frame: the app's frame view and the frame sent to
Claude as context beside a small crop.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels of the frame, x1/y1 exclusive
CHOSEN_RGB = (255, 40, 40)
OTHER_RGBA = (255, 255, 255, 110)  # faint: there, but not the answer


def line_width(image: Image.Image) -> int:
    """A line about 0.4 % of the frame's longer side: visible on a phone, thin on a 4K frame."""
    return max(2, round(max(image.size) / 250))


def outline(frame: Image.Image, chosen: Box | None, others: Sequence[Box] = (), scale: float = 1.0) -> Image.Image:
    """A copy of ``frame`` with ``chosen`` outlined boldly and ``others`` faintly (boxes scaled by ``scale``)."""
    base = frame.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    width = line_width(base)

    def corners(box: Box) -> list[float]:
        x0, y0, x1, y1 = (v * scale for v in box)
        return [x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)]

    for box in others:
        if box != chosen:
            draw.rectangle(corners(box), outline=OTHER_RGBA, width=max(1, width // 2))
    if chosen is not None:
        draw.rectangle(corners(chosen), outline=(*CHOSEN_RGB, 255), width=width)
    return Image.alpha_composite(base, layer).convert("RGB")
