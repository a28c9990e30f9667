"""A query photo given as text (by an agent or an API client): a data URI, bare base64, or a public http(s) URL.

The bytes are checked like any photo afterwards (:func:`carmatch.images.load_image`). A URL is fetched only
when every address its host resolves to is public (no loopback, private, link-local or reserved range: a
visitor cannot make the server read its own network), without following redirects, within a size limit
and a timeout.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from carmatch.errors import InvalidInputError

FETCH_TIMEOUT_SECONDS = 10
_DATA_URI = re.compile(r"^data:image/[\w.+-]+;base64,(?P<data>.*)$", re.S)
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]+$")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        raise InvalidInputError("The image URL redirects elsewhere; give the final address of the image.")


def public_addresses(host: str) -> list[str]:
    """The addresses ``host`` resolves to, when every one is public; InvalidInputError otherwise."""
    try:
        infos = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidInputError(f"The image URL's host {host!r} cannot be found.") from exc
    addresses = sorted({str(info[4][0]) for info in infos})
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_global for a in addresses):
        raise InvalidInputError("The image URL must point to a public address on the internet.")
    return addresses


def fetch_image_url(url: str, max_bytes: int) -> bytes:
    """The bytes at a public http(s) URL, at most ``max_bytes``."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidInputError("An image URL must start with http:// or https://.")
    public_addresses(parts.hostname)
    opener = urllib.request.build_opener(_NoRedirects)
    request = urllib.request.Request(url, headers={"User-Agent": "carmatch", "Accept": "image/*"})
    try:
        with opener.open(request, timeout=FETCH_TIMEOUT_SECONDS) as answer:
            data = answer.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise InvalidInputError(f"The image URL answered HTTP {exc.code}.") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise InvalidInputError("The image URL could not be read.") from exc
    if len(data) > max_bytes:
        raise InvalidInputError(f"The image at the URL is larger than {max_bytes // 1_000_000} MB.")
    return data


def decode_base64_image(text: str, max_bytes: int) -> bytes:
    """The bytes of a data URI (``data:image/jpeg;base64,...``) or of bare base64 text."""
    match = _DATA_URI.match(text)
    payload = match.group("data") if match else text
    if len(payload) > max_bytes * 4 // 3 + 4:
        raise InvalidInputError(f"The image is larger than {max_bytes // 1_000_000} MB.")
    if not _BASE64.match(payload):
        raise InvalidInputError("The image must be a public http(s) URL, a data: URI or base64-encoded bytes.")
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError("The image's base64 data is damaged.") from exc


def query_image_bytes(text: str, max_bytes: int) -> bytes:
    """The photo an agent gave as text: fetched (public URL) or decoded (data URI, base64)."""
    text = text.strip()
    if text.lower().startswith(("http://", "https://")):
        return fetch_image_url(text, max_bytes)
    return decode_base64_image(text, max_bytes)
