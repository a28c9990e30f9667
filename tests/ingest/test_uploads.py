"""Zip uploads: each member a zip may not hold is refused with its reason, and a zip over a limit is refused whole."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

import pytest

from carmatch.errors import InvalidInputError
from carmatch.ingest.uploads import UploadReport, extract_zip
from tests.drawing import draw_car


def png_bytes(color: str, seed: int) -> bytes:
    buf = io.BytesIO()
    draw_car(color, "van", seed=seed).save(buf, format="PNG")
    return buf.getvalue()


def test_links_oversized_members_and_paths_escaping_through_a_link_are_refused_with_their_reason(
    tmp_path: Path,
) -> None:
    good, big = png_bytes("red", 31), png_bytes("blue", 32) + os.urandom(20_000)
    cap = len(good) + 1000
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "linked").symlink_to(outside, target_is_directory=True)  # already there when the zip is extracted
    archive = tmp_path / "tricky.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("folder/", "")
        link = zipfile.ZipInfo("link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("big.png", big)
        zf.writestr("linked/escape.png", good)
        zf.writestr("folder/good.png", good)
    report = UploadReport(folder=tmp_path)
    extracted = extract_zip(archive, dest, cap, report)
    assert extracted == [dest / "folder" / "good.png"] and extracted[0].read_bytes() == good
    assert dict(report.refused) == {
        "link.png": "symbolic link",
        "big.png": f"over the {cap / 1e6:.0f} MB limit",
        "linked/escape.png": "unsafe path in the zip",
    }
    assert not list(outside.iterdir()) and not (dest / "big.png").exists()


def test_a_zip_with_more_entries_than_allowed_is_refused_whole_naming_count_and_limit(tmp_path: Path) -> None:
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n in range(3):
            zf.writestr(f"car{n}.png", png_bytes("red", n))
    out = tmp_path / "out"
    with pytest.raises(InvalidInputError, match="holds 3 entries; upload at most 2 per zip") as refused:
        extract_zip(archive, out, 10_000_000, UploadReport(folder=tmp_path), max_members=2)
    assert (refused.value.field, refused.value.value, refused.value.limit) == ("zip_members", 3, 2)
    assert not out.exists()


def test_a_file_that_is_not_a_zip_is_refused_by_name(tmp_path: Path) -> None:
    archive = tmp_path / "photos.zip"
    archive.write_bytes(png_bytes("red", 1))
    with pytest.raises(InvalidInputError, match="photos.zip is not a valid zip file"):
        extract_zip(archive, tmp_path / "out", 10_000_000, UploadReport(folder=tmp_path))
