"""The app's gallery images: cached WebP thumbnails served in place with long cache headers.

The thumbnails folder is a Gradio static path, so a gallery answer names each file where it lies
(no copy into Gradio's cache, no hash of its bytes per answer). Answers name it through an alias (a
link in the temp folder, :func:`served_folder`), so the home's path never reaches a visitor, the same
as files Gradio copies into its cache. :class:`ThumbnailCacheHeaders`
tells browsers to keep it for a year (a thumbnail's name is its image's digest and size, so it never
changes). :func:`start_making_thumbnails` makes the missing ones in the background when the app
starts. When the home is read-only, thumbnails are made in memory instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from PIL import Image

from carmatch.atomic import point_link
from carmatch.errors import CarmatchError
from carmatch.images import load_image
from carmatch.thumbs import THUMB_FORMAT, THUMB_SIDE, make_thumbnails, placeholder_path, safe_thumbnail

log = logging.getLogger(__name__)

PLACEHOLDER_GREY = (200, 200, 200)  # as carmatch.thumbs draws its placeholder
CACHE_CONTROL = b"public, max-age=31536000, immutable"  # a year: a thumbnail's name never changes meaning
FILE_ROUTE = "/gradio_api/file="
_served: set[Path] = set()


def served_folder(thumbs_dir: Path) -> Path:
    """The name answers give ``thumbs_dir``: a link in the temp folder, named by a digest of the real path."""
    folder = Path(thumbs_dir).resolve()
    digest = hashlib.sha256(str(folder).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    alias = Path(tempfile.gettempdir()) / f"carmatch-thumbs-{digest}"
    try:
        if alias.is_symlink() and Path(os.readlink(alias)) == folder:
            return alias
        point_link(alias, folder)  # replaces a stale link from another home at once
        return alias
    except OSError as exc:  # no writable temp folder: name the folder itself (only an admin's server shows it)
        log.warning("Could not link the thumbnails folder into %s (%s)", alias.parent, exc)
        return folder


def serve_in_place(thumbs_dir: Path) -> Path:
    """Make Gradio serve files of ``thumbs_dir`` where they lie (never copied or hashed per answer); returns the
    folder name answers use."""
    alias = served_folder(thumbs_dir)
    if alias not in _served:
        import gradio as gr

        _served.add(alias)
        gr.set_static_paths(sorted(str(p) for p in _served))
    return alias


def gallery_image(thumbs_dir: Path, image_id: str, source: str | Path) -> str | Image.Image:
    """An image's thumbnail: its cached file; in a read-only home one made in memory; else the grey placeholder."""
    cached = safe_thumbnail(thumbs_dir, image_id, source)
    if cached is not None:
        alias = serve_in_place(thumbs_dir)
        return str(alias / Path(cached).resolve().relative_to(Path(thumbs_dir).resolve()))
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


class ThumbnailCacheHeaders:
    """ASGI middleware: a year's ``Cache-Control`` on the thumbnails Gradio serves from ``folder``."""

    def __init__(self, app: Any, folder: Path) -> None:
        self.app = app
        self.folder = str(served_folder(folder))

    def _is_thumbnail(self, scope: dict[str, Any]) -> bool:
        path = unquote(scope.get("path", ""))
        if scope.get("type") != "http" or scope.get("method") not in ("GET", "HEAD") or FILE_ROUTE not in path:
            return False
        file = path.split(FILE_ROUTE, 1)[1]
        return file.startswith(self.folder + "/") and file.endswith(f".{THUMB_FORMAT}") and "/../" not in file

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not self._is_thumbnail(scope):
            await self.app(scope, receive, send)
            return

        async def send_cached(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message.get("status") == 200:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
                message = {**message, "headers": [*headers, (b"cache-control", CACHE_CONTROL)]}
            await send(message)

        await self.app(scope, receive, send_cached)


def with_thumbnail_cache(app_kwargs: dict[str, Any], thumbs_dir: Path) -> dict[str, Any]:
    """``app_kwargs`` for ``demo.launch()`` with :class:`ThumbnailCacheHeaders` added to its middleware."""
    from starlette.middleware import Middleware

    entry = Middleware(ThumbnailCacheHeaders, folder=thumbs_dir)  # type: ignore[arg-type]
    return {**app_kwargs, "middleware": [*app_kwargs.get("middleware", []), entry]}


def start_making_thumbnails(thumbs_dir: Path, image_paths: list[tuple[str, str]]) -> threading.Thread:
    """Make the missing thumbnails of ``(id, path)`` pairs in a background thread (the app answers meanwhile)."""
    serve_in_place(thumbs_dir)

    def run() -> None:
        try:
            make_thumbnails(thumbs_dir, image_paths)
        except OSError as exc:  # a read-only home: galleries make them in memory instead
            log.warning("Could not make thumbnails ahead: %s", exc)

    thread = threading.Thread(target=run, name="carmatch-thumbnails", daemon=True)
    thread.start()
    return thread
