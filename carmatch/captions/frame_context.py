"""A small car cut from a traffic frame goes to Claude with its frame, the car outlined, as context.

:func:`frame_contexts` says which images get one; :func:`outlined_jpeg` draws the box on the frame
Claude receives. :func:`carmatch.captions.live.prepare_with_frame` puts both in the request.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from carmatch.catalog import Catalog
from carmatch.errors import NotFoundError
from carmatch.outlines import outline

SMALL_CROP_SIDE_PX = 224  # a crop whose longer side is under this goes to Claude with its frame
FRAME_JPEG_QUALITY = 70


@dataclass(frozen=True)
class FrameContext:
    """The frame a small crop was cut from, and where in it the crop is."""

    frame_path: str
    frame_width: int
    box: tuple[int, int, int, int]


def frame_contexts(catalog: Catalog, image_ids: Sequence[str]) -> dict[str, FrameContext]:
    """The frames to send beside the small crops among ``image_ids`` (other images have none)."""
    out: dict[str, FrameContext] = {}
    for image_id, link in catalog.crop_links(image_ids).items():
        x0, y0, x1, y1 = link.box
        if max(x1 - x0, y1 - y0) < SMALL_CROP_SIDE_PX:
            try:
                frame = catalog.get_frame(link.frame_id)
            except NotFoundError:
                continue
            out[image_id] = FrameContext(frame.path, frame.width, link.box)
    return out


def outlined_jpeg(frame_jpeg: bytes, context: FrameContext) -> bytes:
    """The (shrunk) frame's JPEG with the crop's box drawn on it, scaled from the full frame's pixels."""
    frame = Image.open(io.BytesIO(frame_jpeg))
    drawn = outline(frame, context.box, scale=frame.width / context.frame_width)
    buf = io.BytesIO()
    drawn.save(buf, format="JPEG", quality=FRAME_JPEG_QUALITY)
    return buf.getvalue()
