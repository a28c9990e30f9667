"""Image validation: what gets accepted, what gets refused, and why."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from carmatch.errors import ImageError
from carmatch.images import decode_image, load_image
from tests.drawing import draw_car, png_claiming


def encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
def test_supported_formats_decode_to_rgb(fmt: str) -> None:
    loaded = decode_image(encode(draw_car(), fmt))
    assert loaded.image.mode == "RGB" and (loaded.width, loaded.height) == (96, 64)
    assert len(loaded.sha256) == 64


def test_unsupported_format_is_refused() -> None:
    with pytest.raises(ImageError, match="not supported"):
        decode_image(encode(draw_car(), "GIF"), "anim.gif")


def test_oversized_file_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(encode(draw_car(), "PNG"))
    with pytest.raises(ImageError, match="over the"):
        load_image(path, max_bytes=100)


@pytest.mark.parametrize(
    "size,reason",
    [((30_000, 30_000), "decompression bomb"), ((9_000, 8_000), "too large"), ((25_000, 10), "too large")],
)
def test_huge_dimensions_in_the_header_are_refused_before_decoding(size: tuple[int, int], reason: str) -> None:
    with pytest.raises(ImageError, match=reason):
        decode_image(png_claiming(*size), "huge.png")


def test_palette_and_alpha_images_become_rgb() -> None:
    rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 128))
    assert decode_image(encode(rgba, "PNG")).image.mode == "RGB"
    assert decode_image(encode(draw_car().convert("P"), "PNG")).image.mode == "RGB"


def test_exif_rotation_is_applied() -> None:
    img = draw_car(size=(96, 64))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    assert decode_image(buf.getvalue()).image.size == (64, 96)


def camera_jpeg(size: tuple[int, int] = (1600, 1200), orientation: int | None = None) -> bytes:
    """A JPEG the size of a small camera photo, optionally with an EXIF orientation."""
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    buf = io.BytesIO()
    draw_car(size=size).save(buf, format="JPEG", quality=90, exif=exif)
    return buf.getvalue()


def test_a_draft_decode_is_smaller_but_the_same_image_by_id_and_size() -> None:
    data = camera_jpeg()
    full, drafted = decode_image(data), decode_image(data, draft_side=256)
    assert full.image.size == (1600, 1200) and drafted.image.size == (400, 300)  # 1/4 scale still covers 256
    assert drafted.sha256 == full.sha256 and (drafted.width, drafted.height) == (1600, 1200)
    rotated = decode_image(camera_jpeg(orientation=6), draft_side=256)
    assert rotated.image.size == (300, 400) and (rotated.width, rotated.height) == (1200, 1600)


def test_limits_apply_to_the_file_not_the_draft_size() -> None:
    with pytest.raises(ImageError, match="too large"):
        decode_image(camera_jpeg(), "big.jpg", max_pixels=1_000_000, draft_side=256)  # 1.9 MP, decoded at 0.1


def test_a_truncated_jpeg_is_refused_with_or_without_a_draft() -> None:
    cut = camera_jpeg()[:20_000]
    for side in (None, 256):
        with pytest.raises(ImageError, match="corrupt or truncated"):
            decode_image(cut, "cut.jpg", draft_side=side)
