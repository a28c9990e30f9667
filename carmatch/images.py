"""Reading and validating images: every image carmatch touches goes through here.

A JPEG is parsed once: its header is checked (format, pixel limits, decompression bombs), then it
is decoded with Pillow's ``draft`` at the smallest DCT scale (1/2, 1/4, 1/8) that still covers the
size the model needs, which is several times faster for camera photos. The SHA-256 id is always
of the file's bytes, so a draft decode never changes which image it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from carmatch.errors import ImageError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "MPO"})
DRAFT_FORMATS = frozenset({"JPEG", "MPO"})  # formats Pillow can decode at 1/2, 1/4 or 1/8 scale
TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height
DEFAULT_MAX_IMAGE_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000
MAX_IMAGE_SIDE = 20_000

ImageSource = str | Path | bytes | Image.Image


@dataclass(frozen=True)
class LoadedImage:
    """A decoded RGB image with the facts the catalog records about it."""

    image: Image.Image  # at full size, or smaller when decoded with a draft side
    sha256: str
    width: int  # of the file's image, upright (whatever size ``image`` was decoded at)
    height: int
    format: str
    size_bytes: int


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of some bytes: an image's id in the catalog."""
    return hashlib.sha256(data).hexdigest()


def is_image_path(path: Path) -> bool:
    """True when the file name has an image extension carmatch ingests."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def too_large(name: str, size: int, max_bytes: int) -> ImageError:
    """The error for a file of ``size`` bytes over the ``max_bytes`` limit."""
    return ImageError(
        field="image_bytes",
        value=size,
        limit=max_bytes,
        label=f"{name}:",
        reason=f"file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit",
    )


def read_image_bytes(path: Path, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> bytes:
    """Read a file's bytes, refusing empty, missing or over-large files."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if size == 0:
        raise ImageError(f"{path.name}: empty file (0 bytes)")
    if size > max_bytes:
        raise too_large(path.name, size, max_bytes)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def decode_image(
    data: bytes,
    name: str = "image",
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    draft_side: int | None = None,
) -> LoadedImage:
    """Decode and validate image bytes; raise ImageError with a reason a person understands.

    With ``draft_side``, a JPEG is decoded at the smallest scale whose sides are both at least that.
    """
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    if len(data) > max_bytes:
        raise too_large(name, len(data), max_bytes)
    with pillow_errors(name):
        with Image.open(io.BytesIO(data)) as opened:
            fmt, size = check_header(opened, name, max_pixels), opened.size
            if fmt in DRAFT_FORMATS:  # one parse: Pillow's verify() checks nothing in a JPEG, load() finds truncation
                if draft_side:
                    opened.draft("RGB", (draft_side, draft_side))
                return _loaded(opened, data, fmt, size)
            opened.verify()
        with Image.open(io.BytesIO(data)) as opened:
            return _loaded(opened, data, fmt, size)


@contextlib.contextmanager
def pillow_errors(name: str) -> Iterator[None]:
    """Decode with Pillow inside this: a bomb warning is an error, each failure one ImageError naming ``name``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: refused as a possible decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not an image, or a format Pillow cannot read") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{name}: corrupt or truncated image ({exc})") from exc


def check_header(opened: Image.Image, name: str, max_pixels: int) -> str:
    """The format of an opened (not yet decoded) image; ImageError when carmatch refuses it from its header."""
    fmt = opened.format or "unknown"
    width, height = opened.size
    if fmt not in ALLOWED_FORMATS:
        raise ImageError(f"{name}: {fmt} images are not supported (use JPEG, PNG, WebP or BMP)")
    if width <= 0 or height <= 0:
        raise ImageError(f"{name}: image has no pixels")
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE or width * height > max_pixels:
        raise ImageError(
            field="image_pixels",
            value=(width, height),
            limit=max_pixels,
            label=f"{name}:",
            reason=f"{width}x{height} pixels is too large "
            f"(limit {max_pixels / 1e6:.0f} megapixels, {MAX_IMAGE_SIDE} px a side)",
        )
    return fmt


def _loaded(opened: Image.Image, data: bytes, fmt: str, size: tuple[int, int]) -> LoadedImage:
    """Decode an opened image upright in RGB, with the file's own ``size`` (upright; a draft decode is smaller)."""
    width, height = size
    if opened.getexif().get(0x0112) in TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    opened.load()
    upright: Image.Image = ImageOps.exif_transpose(opened) or opened
    return LoadedImage(upright.convert("RGB"), sha256_bytes(data), width, height, fmt, len(data))


def load_image(
    source: ImageSource,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    draft_side: int | None = None,
) -> LoadedImage:
    """Load an image from a path, bytes or a PIL image, validated (a JPEG at ``draft_side``, see decode_image)."""
    if isinstance(source, Image.Image):
        if source.width * source.height > max_pixels:
            raise ImageError(f"image: {source.width}x{source.height} pixels is too large")
        buf = io.BytesIO()
        rgb = source.convert("RGB")
        rgb.save(buf, format="PNG")
        data = buf.getvalue()
        return LoadedImage(rgb, sha256_bytes(data), rgb.width, rgb.height, "PNG", len(data))
    if isinstance(source, (bytes, bytearray)):
        return decode_image(bytes(source), "image", max_pixels, max_bytes, draft_side)
    path = Path(source)
    data = read_image_bytes(path, max_bytes)
    return decode_image(data, path.name, max_pixels, max_bytes, draft_side)


def model_input_side(model: object) -> int | None:
    """The side in pixels of an open_clip model's square image input (None when the model does not say)."""
    size = getattr(getattr(model, "visual", None), "image_size", None)
    if isinstance(size, (tuple, list)):
        size = max(size)
    return int(size) if isinstance(size, int) and size > 0 else None


def thumbnail(image: Image.Image, side: int = 256) -> Image.Image:
    """A copy of ``image`` fitted within ``side`` x ``side`` pixels."""
    copy = image.copy()
    copy.thumbnail((side, side))
    return copy
