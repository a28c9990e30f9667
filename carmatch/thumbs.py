"""Thumbnails cached on disk, so galleries never load full images.

Each is WebP at the gallery's display size, named by the image id (a digest of the image's bytes) and
the side, so a name never changes meaning: the app serves them in place with a year's cache lifetime
(:mod:`carmatch.ui.thumbnails`), and :func:`make_thumbnails` makes them ahead of the first search.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from carmatch.atomic import atomic_open
from carmatch.errors import ImageError
from carmatch.images import load_image

log = logging.getLogger(__name__)

THUMB_SIDE = 320  # a gallery tile is ~160 CSS px: sharp at 2x device pixels
THUMB_FORMAT = "webp"
WEBP_QUALITY = 80  # ~8-15 KB a car at 320 px, a third of the JPEG at quality 85
OLD_FORMATS = ("jpg",)  # thumbnails of earlier releases: never served now, removed by prune_thumbnails


def thumbnail_path(thumbs_dir: Path, image_id: str, source: Path | str, side: int = THUMB_SIDE) -> Path:
    """Path of a cached WebP thumbnail of ``source``, created atomically on first use."""
    target = Path(thumbs_dir) / image_id[:2] / f"{image_id}-{side}.{THUMB_FORMAT}"
    if target.exists():
        return target
    loaded = load_image(Path(source))
    thumb = loaded.image.copy()
    thumb.thumbnail((side, side))
    try:
        with atomic_open(target, "wb") as fh:
            thumb.save(fh, format="WEBP", quality=WEBP_QUALITY, method=4)
    except OSError as exc:
        raise ImageError(f"Cannot write thumbnail {target}: {exc}") from exc
    return target


def remove_thumbnails(thumbs_dir: Path, image_ids: Iterable[str]) -> int:
    """Delete every cached thumbnail of ``image_ids`` (all sizes), so a deleted image is no longer served."""
    removed = 0
    for image_id in image_ids:
        if len(image_id) < 2 or not image_id.isalnum():
            continue  # ids are hex digests; anything else could glob outside its own thumbnails
        for path in (Path(thumbs_dir) / image_id[:2]).glob(f"{image_id}-*.*"):
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                continue
    return removed


def prune_thumbnails(thumbs_dir: Path, live_ids: Iterable[str]) -> int:
    """Delete cached thumbnails of images no longer in the collection, and those of an earlier format."""
    live = set(live_ids)
    removed = 0
    for path in Path(thumbs_dir).glob("??/*-*.*"):
        if path.name.rsplit("-", 1)[0] not in live or path.suffix[1:] in OLD_FORMATS:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:  # a read-only home keeps them (the app still starts); retried next start
                log.warning("Could not remove the stale thumbnail %s: %s", path, exc)
                continue
            removed += 1
    if removed:
        log.info("Removed %d thumbnail(s) of images no longer in the collection", removed)
    return removed


def placeholder_path(thumbs_dir: Path) -> Path:
    """A grey square shown where an image's file is gone or unreadable."""
    path = Path(thumbs_dir) / "missing.png"
    if not path.exists():
        from PIL import Image

        with atomic_open(path, "wb") as fh:
            Image.new("RGB", (64, 64), (200, 200, 200)).save(fh, format="PNG")
    return path


def safe_thumbnail(thumbs_dir: Path, image_id: str, source: Path | str, side: int = THUMB_SIDE) -> Path | None:
    """Like thumbnail_path, but None (logged) when the original is gone or unreadable."""
    try:
        return thumbnail_path(thumbs_dir, image_id, source, side)
    except ImageError as exc:
        log.warning("No thumbnail for %s: %s", image_id[:12], exc)
        return None


def make_thumbnails(
    thumbs_dir: Path,
    images: Iterable[tuple[str, Path | str]],
    side: int = THUMB_SIDE,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Make the missing thumbnails of ``(image id, file)`` pairs ahead of any search; how many were made.

    Unreadable originals are logged and skipped; ``should_stop`` ends the run between two images.
    """
    made = 0
    for image_id, source in images:
        if should_stop():
            break
        if (Path(thumbs_dir) / image_id[:2] / f"{image_id}-{side}.{THUMB_FORMAT}").exists():
            continue
        made += safe_thumbnail(thumbs_dir, image_id, source, side) is not None
    if made:
        log.info("Made %d thumbnail(s) ahead of the first search", made)
    return made
