"""The app's gallery images: cached thumbnails, or, when the home is read-only, ones made in memory."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from carmatch.errors import CarmatchError
from carmatch.images import load_image
from carmatch.thumbs import THUMB_SIDE, placeholder_path, safe_thumbnail

PLACEHOLDER_GREY = (200, 200, 200)  # as carmatch.thumbs draws its placeholder


def gallery_image(thumbs_dir: Path, image_id: str, source: str | Path) -> str | Image.Image:
    """An image's thumbnail: its cached file; in a read-only home one made in memory; else the grey placeholder."""
    cached = safe_thumbnail(thumbs_dir, image_id, source)
    if cached is not None:
        return str(cached)
    try:  # the thumbnail could not be cached (a read-only home) or the original is gone: Gradio copies this one
        thumb = load_image(Path(source)).image.copy()
        thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))
        return thumb
    except CarmatchError:
        pass
    try:
        return str(placeholder_path(thumbs_dir))
    except OSError:  # read-only, and no placeholder written before
        return Image.new("RGB", (64, 64), PLACEHOLDER_GREY)
