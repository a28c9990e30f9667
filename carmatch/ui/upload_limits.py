"""Per-visitor upload bounds: the app's upload route refuses what would let one visitor fill the disk.

Gradio stores every upload (POST ``…/upload``) in its cache before any handler runs, so the bounds sit in
front of that route as ASGI middleware: a visitor (keyed as the rate limits are, see
:func:`carmatch.access.client_key`) may upload at most CARMATCH_UPLOADS_PER_MINUTE times a minute and
CARMATCH_UPLOAD_BYTES_PER_HOUR bytes an hour, each upload at most CARMATCH_MAX_QUERY_UPLOAD_BYTES (a photo to
search by). A client that unlocked admin editing is held only to CARMATCH_MAX_UPLOAD_BYTES (images to ingest).
Refusals are one JSON line with HTTP 411, 413 or 429; nothing is stored.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any

from carmatch.access import PASSWORD_THROTTLE, UnlockThrottle, client_key
from carmatch.config import Settings

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
HOUR_SECONDS = 3600.0


def amount(size: int) -> str:
    """A byte count as people read it: ``4,000 bytes`` or ``10.5 MB``."""
    return f"{size:,} bytes" if size < 1_000_000 else f"{size / 1e6:.1f} MB"


class UploadBudget:
    """Each client's uploads in the last hour: how many in the last minute, how many bytes in the hour."""

    def __init__(self, per_minute: int, bytes_per_hour: int, clock: Callable[[], float] = time.monotonic):
        self.per_minute, self.bytes_per_hour, self.clock = per_minute, bytes_per_hour, clock
        self._uploads: OrderedDict[str, deque[tuple[float, int]]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str, size: int) -> str | None:
        """Count an upload of ``size`` bytes from ``client``; the reason it is refused (then not counted), or None."""
        now = self.clock()
        with self._lock:
            recent = self._uploads.pop(client, deque())
            while recent and recent[0][0] <= now - HOUR_SECONDS:
                recent.popleft()
            self._uploads[client] = recent
            while len(self._uploads) > 10_000:  # bounded memory under many addresses
                self._uploads.popitem(last=False)
            in_minute = [t for t, _ in recent if t > now - 60]
            if len(in_minute) >= self.per_minute:
                return f"Too many uploads from your address: try again in {in_minute[0] + 60 - now:.0f} s."
            used = sum(n for _, n in recent)
            if used + size > self.bytes_per_hour:
                wait = recent[0][0] + HOUR_SECONDS - now if recent else HOUR_SECONDS
                return (
                    f"Your address uploaded {amount(used)} in the last hour (the limit is "
                    f"{amount(self.bytes_per_hour)}): try again in {max(1.0, wait / 60):.0f} min."
                )
            recent.append((now, size))
        return None


class UploadLimits:
    """ASGI middleware in front of Gradio's upload route applying the per-visitor bounds."""

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        budget: UploadBudget | None = None,
        throttle: UnlockThrottle = PASSWORD_THROTTLE,
    ):
        self.app, self.settings, self.throttle = app, settings, throttle
        self.budget = budget or UploadBudget(settings.uploads_per_minute, settings.upload_bytes_per_hour)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        upload = scope.get("method") == "POST" and str(scope.get("path", "")).endswith("/upload")
        if scope.get("type") != "http" or not upload:
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message = refusal
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """(HTTP status, one line) when this upload is refused; None when it may go on."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        peer = (scope.get("client") or ("", 0))[0]
        client = client_key(peer, headers.get("x-forwarded-for", ""), self.settings.trusted_proxies)
        try:
            size = int(headers.get("content-length", ""))
        except ValueError:
            return 411, "An upload must say its size (Content-Length)."
        if self.throttle.unlocked_recently(client):
            return None  # an admin adding images: Gradio's CARMATCH_MAX_UPLOAD_BYTES applies
        cap = self.settings.max_query_upload_bytes
        if size > cap:
            log.warning("Upload of %d bytes from %s refused (over %d)", size, client, cap)
            return 413, f"A photo to search by may be at most {amount(cap)} (got {amount(size)})."
        reason = self.budget.take(client, size)
        if reason is not None:
            log.warning("Upload from %s refused: %s", client, reason)
            return 429, reason
        return None


def discard_uploads(files: Iterable[str | Path | None]) -> int:
    """Delete Gradio's temp copies of uploads once used (only files inside its upload folder); how many went."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()).resolve()
    removed = 0
    for file in files:
        if not file:
            continue
        path = Path(file).resolve()
        if folder in path.parents and path.is_file():
            try:
                path.unlink()
                removed += 1
            except OSError as exc:
                log.debug("Could not remove upload %s: %s", path, exc)
    return removed
