"""Images uploaded through the app (single files or zips) copied into the uploads folder, then ingested.

Zips are read defensively: members with absolute paths or ``..`` are refused, only image files are
extracted, each member is streamed with a byte cap (the header's size is not trusted), and the
member count, total size and compression ratio are limited so a zip bomb cannot fill the disk.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import uuid
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from carmatch.atomic import atomic_open
from carmatch.catalog import Catalog
from carmatch.errors import InvalidInputError
from carmatch.images import is_image_path
from carmatch.ingest.frames import frame_ingestor
from carmatch.progress import Progress, no_progress

log = logging.getLogger(__name__)


MAX_ZIP_MEMBERS = 20_000
MAX_ZIP_TOTAL_BYTES = 10 * 1024**3
MAX_COMPRESSION_RATIO = 200
COPY_CHUNK_BYTES = 1024 * 1024


@dataclass
class UploadReport:
    """What an upload did before and during ingest."""

    folder: Path | None = None
    files: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    ingest: Any = None  # IngestReport
    removed_duplicates: int = 0
    frames: Any = None  # FrameReport, when the uploads were traffic frames (cars cut out)

    def summary(self) -> str:
        """Lines for the app: what was stored, ingested and refused."""
        lines = [f"Received {self.files} image file(s)."]
        if self.frames is not None:
            lines.append(self.frames.summary())  # the pipeline's summary included
        elif self.ingest is not None:
            lines.append(self.ingest.summary())
        if self.removed_duplicates:
            lines.append(
                f"{self.removed_duplicates} uploaded file(s) were not kept (already in the collection, or unreadable)."
            )
        for name, reason in self.refused[:30]:
            lines.append(f"  refused {name}: {reason}")
        if len(self.refused) > 30:
            lines.append(f"  ... and {len(self.refused) - 30} more refused")
        return "\n".join(lines)


def safe_member_path(name: str) -> PurePosixPath | None:
    """The relative path a zip member may be extracted to, or None when it is unsafe."""
    name = name.replace("\\", "/")
    if not name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return None
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return None
    return PurePosixPath(*parts)


def extract_zip(
    archive: Path,
    dest: Path,
    max_member_bytes: int,
    report: UploadReport,
    max_members: int = MAX_ZIP_MEMBERS,
    max_total_bytes: int = MAX_ZIP_TOTAL_BYTES,
) -> list[Path]:
    """Extract the image members of ``archive`` under ``dest`` safely; returns their paths."""
    out: list[Path] = []
    total = 0
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            if len(members) > max_members:
                reason = f"holds {len(members)} entries; upload at most {max_members} per zip"
                raise _refused(archive, "zip_members", len(members), max_members, reason)
            for info in members:
                target = _member_target(info, dest, max_member_bytes, report)
                if target is None:
                    continue
                written = _extract_member(zf, info, target, max_member_bytes, report)
                if written is None:
                    continue
                total += written
                if total > max_total_bytes:
                    for extracted in (target, *out):  # the zip is refused whole: leave nothing half-added behind
                        extracted.unlink(missing_ok=True)
                    reason = f"expands to more than {max_total_bytes / 1e9:.0f} GB; upload smaller zips"
                    raise _refused(archive, "zip_bytes", total, max_total_bytes, reason)
                out.append(target)
    except zipfile.BadZipFile as exc:
        raise InvalidInputError(f"{archive.name} is not a valid zip file ({exc}).") from exc
    return out


def _member_target(info: zipfile.ZipInfo, dest: Path, max_member_bytes: int, report: UploadReport) -> Path | None:
    """Where member ``info`` is extracted under ``dest``; None when it is skipped (the refusal goes in ``report``)."""
    if info.is_dir():
        return None
    reason: str | None
    rel = safe_member_path(info.filename)
    if rel is None:
        reason = "unsafe path in the zip (absolute, '..' or hidden)"
    else:
        target = dest.joinpath(*rel.parts)
        reason = _member_refusal(info, rel, max_member_bytes) or _escape_refusal(target, dest)
        if reason is None:
            return target
    report.refused.append((info.filename, reason))
    return None


def _member_refusal(info: zipfile.ZipInfo, rel: PurePosixPath, max_member_bytes: int) -> str | None:
    """Why the header of member ``info`` rules it out (link, not an image, too big, bomb-like), or None."""
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    if not is_image_path(Path(rel.name)):
        return "not a JPEG, PNG, WebP or BMP file"
    if info.file_size > max_member_bytes:
        return f"over the {max_member_bytes / 1e6:.0f} MB limit"
    if info.compress_size and info.file_size / info.compress_size > MAX_COMPRESSION_RATIO:
        return "compression ratio too high (possible zip bomb)"
    return None


def _escape_refusal(target: Path, dest: Path) -> str | None:
    """A refusal when ``target`` resolves outside ``dest`` (through a link already there), else None."""
    return None if target.resolve().is_relative_to(dest.resolve()) else "unsafe path in the zip"


def _extract_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, max_member_bytes: int, report: UploadReport
) -> int | None:
    """Copy one member to ``target``; its byte count, or None (the refusal goes in ``report``) when nothing was kept."""
    try:
        written = _copy_capped(zf, info, target, max_member_bytes)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        report.refused.append((info.filename, f"corrupt entry in the zip ({exc})"))
        return None
    except RuntimeError as exc:  # zipfile's error for an encrypted member
        report.refused.append((info.filename, f"cannot extract ({exc})"))
        return None
    if written is None:
        report.refused.append((info.filename, f"over the {max_member_bytes / 1e6:.0f} MB limit"))
    return written


def _refused(archive: Path, field: str, value: int, limit: int, reason: str) -> InvalidInputError:
    """A zip refused whole for going over ``limit`` (entries or bytes)."""
    return InvalidInputError(field=field, value=value, limit=limit, label=archive.name, reason=reason)


def _copy_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, cap: int) -> int | None:
    """Stream one member to ``target`` atomically; None (nothing written) when it exceeds ``cap``."""
    written = 0
    try:
        with zf.open(info) as src, atomic_open(_unique(target), "wb") as dst:
            while chunk := src.read(COPY_CHUNK_BYTES):
                written += len(chunk)
                if written > cap:
                    raise OverflowError  # atomic_open drops the temp file: nothing is written
                dst.write(chunk)
    except OverflowError:
        return None
    return written


def _unique(target: Path) -> Path:
    if not target.exists():
        return target
    return target.with_name(f"{target.stem}-{uuid.uuid4().hex[:6]}{target.suffix}")


def stage_uploads(
    files: Sequence[Path | str], uploads_dir: Path, max_image_bytes: int
) -> tuple[list[Path], UploadReport]:
    """Copy uploaded images (and the images inside uploaded zips) into a new folder under ``uploads_dir``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = Path(uploads_dir) / f"{stamp}-{uuid.uuid4().hex[:6]}"
    folder.mkdir(parents=True, exist_ok=True)
    report = UploadReport(folder=folder)
    paths: list[Path] = []
    for raw in files:
        source = Path(raw)
        name = source.name
        if source.suffix.lower() == ".zip":
            paths.extend(extract_zip(source, folder / source.stem, max_image_bytes, report))
        elif is_image_path(source):
            try:
                size = source.stat().st_size
            except OSError as exc:
                report.refused.append((name, f"cannot read ({exc.strerror or exc})"))
                continue
            if size > max_image_bytes:
                report.refused.append((name, f"over the {max_image_bytes / 1e6:.0f} MB limit"))
                continue
            target = _unique(folder / name)
            with open(source, "rb") as src, atomic_open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, COPY_CHUNK_BYTES)
            paths.append(target)
        else:
            report.refused.append((name, "not an image (JPEG, PNG, WebP, BMP) or a .zip of images"))
    report.files = len(paths)
    return paths, report


def add_uploads(
    runtime: Any, files: Sequence[Path | str], progress: Progress = no_progress, cars: bool = False
) -> UploadReport:
    """Store uploaded images/zips under ``settings.uploads_dir`` and ingest them (validate, dedupe, embed).

    With ``cars``, they are traffic frames: each car the detector finds becomes an image of its own.
    """
    settings = runtime.settings
    if not files:
        raise InvalidInputError("Choose image files or a .zip of images to upload.")
    paths, report = stage_uploads(files, settings.uploads_dir, settings.max_image_bytes)
    if paths:
        # the ingestor is made under the lock: it embeds with the model then active
        with runtime.store.write_lock.holding("upload", progress):
            root = settings.uploads_dir.resolve()
            if cars:
                frames = frame_ingestor(runtime.ingestor(), settings, cars=True)
                assert frames is not None  # cars=True always gives a detector
                report.frames = frames.ingest_paths(paths, root, progress=progress)
                report.ingest = report.frames.ingest
            else:
                report.ingest = runtime.ingestor().ingest_paths(paths, root=root, progress=progress)
            report.removed_duplicates = _drop_unused_copies(runtime.catalog, paths)
    _remove_empty_dirs(report.folder)
    return report


def _drop_unused_copies(catalog: Catalog, paths: Sequence[Path]) -> int:
    """Delete uploaded copies that the catalog does not point to (duplicates, refused files)."""
    removed = 0
    for path in paths:
        resolved = path.resolve()
        kept = catalog.find_by_path(str(resolved)) is not None or catalog.has_frame_at(str(resolved))
        if not kept and resolved.exists():
            resolved.unlink()
            removed += 1
    return removed


def _remove_empty_dirs(folder: Path | None) -> None:
    if folder is None or not folder.exists():
        return
    for dirpath, _dirnames, _files in sorted(os.walk(folder), key=lambda t: -len(t[0])):
        try:
            Path(dirpath).rmdir()
        except OSError:
            pass  # not empty
