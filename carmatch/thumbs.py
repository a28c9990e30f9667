"""Thumbnails cached on disk, so galleries never load full images."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from carmatch.atomic import atomic_open
from carmatch.errors import ImageError
from carmatch.images import load_image

log = logging.getLogger(__name__)

THUMB_SIDE = 320


def thumbnail_path(thumbs_dir: Path, image_id: str, source: Path | str, side: int = THUMB_SIDE) -> Path:
    """Path of a cached JPEG thumbnail of ``source``, created atomically on first use."""
    target = Path(thumbs_dir) / image_id[:2] / f"{image_id}-{side}.jpg"
    if target.exists():
        return target
    loaded = load_image(Path(source))
    thumb = loaded.image.copy()
    thumb.thumbnail((side, side))
    try:
        with atomic_open(target, "wb") as fh:
            thumb.save(fh, format="JPEG", quality=85)
    except OSError as exc:
        raise ImageError(f"Cannot write thumbnail {target}: {exc}") from exc
    return target


def remove_thumbnails(thumbs_dir: Path, image_ids: Iterable[str]) -> int:
    """Delete every cached thumbnail of ``image_ids`` (all sizes), so a deleted image is no longer served."""
    removed = 0
    for image_id in image_ids:
        if len(image_id) < 2 or not image_id.isalnum():
            continue  # ids are hex digests; anything else could glob outside its own thumbnails
        for path in (Path(thumbs_dir) / image_id[:2]).glob(f"{image_id}-*.jpg"):
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                continue
    return removed


def prune_thumbnails(thumbs_dir: Path, live_ids: Iterable[str]) -> int:
    """Delete cached thumbnails of images no longer in the collection (e.g. deleted before this sweep existed)."""
    live = set(live_ids)
    removed = 0
    for path in Path(thumbs_dir).glob("??/*-*.jpg"):
        if path.name.rsplit("-", 1)[0] not in live:
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
