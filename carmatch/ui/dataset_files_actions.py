"""The Dataset tab's "files" panel as plain functions: import captions, export pairs, add images.

Like every Dataset action, each takes the session's password and checks it again before anything
else. Functions return plain data; :mod:`carmatch.ui.dataset_files_panel` lays out and wires them.
The library checks files, formats and limits; its errors are phrased with the panel's labels.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from carmatch.dataset.export import export_csv, export_jsonl
from carmatch.dataset.export_titan import export_titan
from carmatch.dataset.import_captions import (
    apply_import,
    plan_from_state,
    plan_to_state,
    preview_import,
    read_import_file,
)
from carmatch.errors import InvalidInputError
from carmatch.ingest.uploads import add_uploads
from carmatch.progress import Progress, no_progress
from carmatch.runtime import Runtime
from carmatch.ui.dataset_actions import APP_AUTHOR, require_admin
from carmatch.ui.phrasing import phrased
from carmatch.ui.upload_limits import discard_uploads

DOWNLOAD_PREFIX = "carmatch-export-"  # an export's downloads, in the system temp folder until Gradio copied them
DOWNLOAD_KEEP_SECONDS = 600  # one left by a stopped process is removed at the next export once this old
EXPORT_FORMATS = ("csv", "jsonl", "titan")


@phrased
def import_preview(
    runtime: Runtime, session_password: str | None, file: str | Path | None, reset_reviewed: bool = False
) -> tuple[str, list[list[Any]], list[dict[str, Any]]]:
    """Preview an uploaded captions file: (summary, table rows, plan kept for apply). Changes nothing.

    Approved and rejected captions keep their decision (listed per state) unless ``reset_reviewed``.
    """
    require_admin(runtime, session_password)
    if not file:
        raise InvalidInputError("Choose a captions CSV or JSONL file first.")
    rows, ignored = read_import_file(Path(file))
    preview = preview_import(runtime.catalog, rows, ignored, reset_reviewed=reset_reviewed)
    return preview.summary(), preview.table(), plan_to_state(preview)


@phrased
def import_apply(
    runtime: Runtime, session_password: str | None, plan: list[dict[str, Any]] | None, progress: Progress = no_progress
) -> str:
    """Apply a previewed import (rows changed since the preview are skipped)."""
    require_admin(runtime, session_password)
    if not plan:
        raise InvalidInputError("Nothing to apply: preview a captions file first.")
    return apply_import(
        runtime.catalog, plan_from_state(plan), author=f"{APP_AUTHOR} import", progress=progress
    ).summary()


@phrased
def export(
    runtime: Runtime,
    session_password: str | None,
    fmt: str,
    include_unreviewed: bool = False,
    s3_prefix: str | None = None,
    progress: Progress = no_progress,
) -> tuple[list[str], str]:
    """Export for download; returns (the files, in a new temp folder for :func:`remove_downloads`, summary).

    CSV and JSONL are written straight into that folder, so once the download is served nothing of
    them stays on the server. A Titan export keeps its folder (converted images and manifest, for
    the S3 upload) under ``<home>/exports``; its JSONL and manifest go to the folder as copies.
    """
    require_admin(runtime, session_password)
    if fmt not in EXPORT_FORMATS:
        raise InvalidInputError(f"Unknown export format {fmt!r}; use csv, jsonl or titan.")
    _check_something_to_export(runtime, include_unreviewed)
    downloads = download_folder()
    try:
        files, text = _export_into(runtime, downloads, fmt, include_unreviewed, s3_prefix or "", progress)
    except BaseException:
        shutil.rmtree(downloads, ignore_errors=True)  # a refused or failed export leaves nothing either
        raise
    return [str(path) for path in files], text


def _export_into(
    runtime: Runtime, downloads: Path, fmt: str, include_unreviewed: bool, s3_prefix: str, progress: Progress
) -> tuple[list[Path], str]:
    """Write the ``fmt`` export; (the files to download, all in ``downloads``, summary)."""
    catalog = runtime.catalog
    if fmt == "csv":
        report = export_csv(catalog, downloads / "pairs.csv", include_unreviewed)
        return list(report.files), report.summary()
    if fmt == "jsonl":
        report = export_jsonl(catalog, downloads / "pairs.jsonl", include_unreviewed)
        return list(report.files), report.summary()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = runtime.settings.files_home / "exports" / stamp / "titan"
    report = export_titan(catalog, folder, s3_prefix, include_unreviewed, progress=progress)
    copies = [downloads / f"titan-{path.name}" for path in report.files]
    for path, copy in zip(report.files, copies):
        shutil.copyfile(path, copy)
    text = report.summary() + (
        f"\n\nFiles and converted images are in `{folder}`. Upload images and JSONL to S3 with:\n"
        f"`.venv/bin/carmatch dataset export --format titan --out DIR --s3-prefix {s3_prefix} --upload`"
    )
    return copies, text


def download_folder(keep_seconds: float = DOWNLOAD_KEEP_SECONDS) -> Path:
    """A new temp folder for an export's downloads, after removing any an earlier export left.

    The panel removes each folder once Gradio has copied its files into its own cache (cleaned by
    ``delete_cache``); one older than ``keep_seconds`` was left by a process stopped in between.
    """
    for old in Path(tempfile.gettempdir()).glob(f"{DOWNLOAD_PREFIX}*"):
        with contextlib.suppress(OSError):
            if old.is_dir() and time.time() - old.stat().st_mtime > keep_seconds:
                shutil.rmtree(old)
    return Path(tempfile.mkdtemp(prefix=DOWNLOAD_PREFIX))


def remove_downloads(files: Sequence[str | Path] | None) -> None:
    """Delete the temp folders holding an export's downloads (only :func:`download_folder`'s own)."""
    temp = Path(tempfile.gettempdir()).resolve()
    for folder in {Path(file).resolve().parent for file in files or []}:
        if folder.parent == temp and folder.name.startswith(DOWNLOAD_PREFIX):
            shutil.rmtree(folder, ignore_errors=True)


def _check_something_to_export(runtime: Runtime, include_unreviewed: bool) -> None:
    """Refuse, saying why, an export that would write an empty file."""
    states = ["approved", "unreviewed"] if include_unreviewed else ["approved"]
    if runtime.catalog.count_captioned(states) > 0:
        return
    if include_unreviewed:
        raise InvalidInputError("Nothing to export: no image has a caption that is not rejected.")
    raise InvalidInputError(
        "Nothing to export: 0 approved captions. Tick 'include unreviewed' or approve some captions first."
    )


@phrased
def add_images(
    runtime: Runtime,
    session_password: str | None,
    files: Sequence[str | Path] | None,
    progress: Progress = no_progress,
    cars: bool = False,
) -> str:
    """Add uploaded images or zips to the collection (validated, deduplicated, embedded; ``cars``: traffic frames)."""
    require_admin(runtime, session_password)
    try:
        return add_uploads(runtime, [Path(f) for f in (files or [])], progress, cars=bool(cars)).summary()
    finally:
        discard_uploads(files or [])  # copied into the uploads folder (or refused): Gradio's temp copy goes now
