"""Import captions from CSV or JSONL: preview what would change, then apply (reading: ``import_reading``).

A row names its image by ``id`` (or a unique id prefix) or by ``file``: the path as ingested,
absolute or relative to the ingested folder. ``caption`` is required; the attribute columns
(color, body_type, make, model, viewpoint) are optional. Imported captions start unreviewed
and never replace a caption a person wrote; a new caption for an approved or rejected image is
left out (and listed per state) unless the import is told to reset reviewed captions.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from carmatch.catalog import Catalog, ImageRecord
from carmatch.dataset.bulk import BulkReport
from carmatch.dataset.curation import MAX_CAPTION_CHARS, merge_attributes
from carmatch.dataset.import_reading import ImportRow, plain_text, read_import_file
from carmatch.errors import ConflictError, InvalidInputError, NotFoundError
from carmatch.images import sha256_bytes
from carmatch.progress import Progress, no_progress

__all__ = ["ImportRow", "plain_text", "read_import_file"]  # the reading side lives in import_reading

log = logging.getLogger(__name__)


REVIEWED = ("approved", "rejected")  # review decisions an import keeps unless told to reset them
RESET_FLAG = "--reset-reviewed"  # the CLI flag (the app's checkbox says the same) that lets an import reset them


@dataclass
class PlannedChange:
    """What applying one row will do to one image."""

    line: int
    label: str
    image_id: str
    version: int
    old_caption: str | None
    new_caption: str
    old_attributes: dict[str, Any]
    new_attributes: dict[str, Any]
    old_source: str | None
    old_state: str | None = None

    @property
    def caption_changes(self) -> bool:
        """True when the row changes the caption; attribute-only changes keep source and review state."""
        return self.new_caption != self.old_caption


@dataclass
class ImportPreview:
    """The changes an import would make, and the rows it would not use (with reasons)."""

    rows: int = 0
    changes: list[PlannedChange] = field(default_factory=list)
    unchanged: int = 0
    problems: list[tuple[int, str, str]] = field(default_factory=list)  # (line, label, reason)
    ignored_columns: list[str] = field(default_factory=list)

    kept_reviewed: list[PlannedChange] = field(default_factory=list)  # reviewed captions left alone (no reset)

    def approvals_reset(self) -> list[PlannedChange]:
        """Changes whose new caption sends an approved image back to unreviewed."""
        return [c for c in self.changes if c.caption_changes and c.old_state == "approved"]

    def reviews_reset(self) -> dict[str, list[PlannedChange]]:
        """Changes whose new caption sends a reviewed image back to unreviewed, by its review state."""
        return {state: [c for c in self.changes if c.caption_changes and c.old_state == state] for state in REVIEWED}

    def reviews_kept(self) -> dict[str, list[PlannedChange]]:
        """Rows left out because they would undo a review decision, by the image's review state."""
        return {state: [c for c in self.kept_reviewed if c.old_state == state] for state in REVIEWED}

    def summary(self, limit: int = 20) -> str:
        """The preview as text: counts, the first changes, and the problems."""
        lines = [
            f"{self.rows} row(s): {len(self.changes)} caption(s) will change, {self.unchanged} already match, "
            f"{len(self.problems)} row(s) will be skipped."
        ]
        if self.ignored_columns:
            lines.append(f"Ignored columns: {', '.join(self.ignored_columns)}")
        for change in self.changes[:limit]:
            old = repr(change.old_caption) if change.old_caption else "(no caption)"
            lines.append(f"  {change.label}: {old} -> {change.new_caption!r}")
            if change.new_attributes != change.old_attributes:
                lines.append(f"      attributes {change.old_attributes} -> {change.new_attributes}")
        for state, reset in self.reviews_reset().items():
            if reset:
                lines.append(f"{len(reset)} {state} caption(s) will return to unreviewed:")
                lines.extend(f"  {change.label}" for change in reset[:limit])
        for state, kept in self.reviews_kept().items():
            if kept:
                lines.append(
                    f"{len(kept)} {state} caption(s) keep their review decision and are not changed "
                    f"({RESET_FLAG} replaces them and sends them back to unreviewed):"
                )
                lines.extend(f"  {change.label}" for change in kept[:limit])
        if len(self.changes) > limit:
            lines.append(f"  ... and {len(self.changes) - limit} more change(s)")
        for line, label, reason in self.problems[:limit]:
            lines.append(f"  skip line {line} ({label}): {reason}")
        if len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more skipped row(s)")
        return "\n".join(lines)

    def table(self) -> list[list[Any]]:
        """Rows for a preview table: line, image, current caption, new caption, attributes."""
        return [
            [c.line, c.label, c.old_caption or "", c.new_caption, json.dumps(c.new_attributes, sort_keys=True)]
            for c in self.changes
        ]


# -- matching --------------------------------------------------------------------------------
def find_image(catalog: Catalog, row: ImportRow, root: Path | None = None) -> ImageRecord:
    """The live image a row names; NotFoundError or InvalidInputError with the reason.

    The one matching rule of `dataset import` and `ingest --captions`: by id; else by path (absolute,
    or relative to ``root``, the folder being ingested); then by the path relative to the folder the
    image was ingested from; then by content (the file the row names hashes to a known image), so a
    moved or re-ingested folder still matches.
    """
    if row.id:
        return _find_by_id(catalog, row.id)
    if not row.file:
        raise InvalidInputError("no file or id")
    given = Path(row.file).expanduser()
    on_disk = given if given.is_absolute() else (root / given if root is not None else None)
    if on_disk is not None:
        for candidate in dict.fromkeys([str(on_disk), str(on_disk.resolve())]):
            record = catalog.find_by_path(candidate)
            if record is not None:
                return record
    if not given.is_absolute():
        record = _find_by_rel_path(catalog, row.file, root)
        if record is not None:
            return record
    record = _find_by_content(catalog, on_disk)
    if record is not None:
        return record
    if given.is_absolute():
        raise NotFoundError("no ingested image has this path or this file's content")
    raise NotFoundError("no ingested image has this path (relative to its ingested folder) or this file's content")


def _find_by_id(catalog: Catalog, image_id: str) -> ImageRecord:
    key = image_id.strip().lower()
    matches = catalog.images_with_id_prefix(key, limit=2)
    if not matches:
        raise NotFoundError("no image with this id in the collection")
    if len(matches) > 1 and matches[0].id != key:
        raise InvalidInputError("id prefix matches several images")
    return matches[0]


def _find_by_rel_path(catalog: Catalog, file: str, root: Path | None) -> ImageRecord | None:
    rel = str(PurePosixPath(*[p for p in PurePosixPath(file.replace("\\", "/")).parts if p != "."]))
    found = catalog.images_with_rel_path(rel, limit=50)
    if root is not None:  # several folders hold this name: the one being ingested decides
        found = [r for r in found if r.root == str(root)] or found
    if len({r.id for r in found}) > 1:
        raise InvalidInputError("this relative path exists in several ingested folders; use the absolute path or id")
    return found[0] if found else None


def _find_by_content(catalog: Catalog, path: Path | None) -> ImageRecord | None:
    """The live image whose id is the SHA-256 of the file at ``path``, if that file can be read."""
    if path is None or not path.is_file():
        return None
    try:
        image_id = sha256_bytes(path.read_bytes())
    except OSError:
        return None
    found = catalog.get_many([image_id])
    return found.get(image_id)


def preview_import(
    catalog: Catalog, rows: list[ImportRow], ignored_columns: list[str] | None = None, reset_reviewed: bool = False
) -> ImportPreview:
    """Match rows to images and work out what would change; changes nothing.

    A new caption for an approved or rejected image is left out (``kept_reviewed``) unless ``reset_reviewed``:
    then it is planned, and the image returns to unreviewed.
    """
    preview = ImportPreview(rows=len(rows), ignored_columns=list(ignored_columns or []))
    seen: dict[str, int] = {}
    for row in rows:
        if row.problem:
            preview.problems.append((row.line, row.label, row.problem))
            continue
        caption = " ".join(row.caption.split())
        if not caption:
            preview.problems.append((row.line, row.label, "empty caption"))
            continue
        if len(caption) > MAX_CAPTION_CHARS:
            preview.problems.append((row.line, row.label, f"caption over {MAX_CAPTION_CHARS} characters"))
            continue
        try:
            record = find_image(catalog, row)
        except (NotFoundError, InvalidInputError) as exc:
            preview.problems.append((row.line, row.label, str(exc)))
            continue
        if record.id in seen:
            preview.problems.append((row.line, row.label, f"same image as line {seen[record.id]}; first one used"))
            continue
        seen[record.id] = row.line
        attrs = merge_attributes(record.attributes, row.attributes)
        if caption == record.caption and attrs == record.attributes:
            preview.unchanged += 1
            continue
        if record.caption_source == "human" and record.caption and caption != record.caption:
            preview.problems.append((row.line, row.label, "kept the caption a person wrote"))
            continue
        change = PlannedChange(
            row.line,
            row.label,
            record.id,
            record.version,
            record.caption,
            caption,
            dict(record.attributes),
            attrs,
            record.caption_source,
            record.review_state,
        )
        if change.caption_changes and record.review_state in REVIEWED and not reset_reviewed:
            preview.kept_reviewed.append(change)
            continue
        preview.changes.append(change)
    return preview


def apply_import(
    catalog: Catalog, preview: ImportPreview, author: str = "import", progress: Progress = no_progress
) -> BulkReport:
    """Apply a preview's changes as ``imported`` captions (unreviewed); rows changed since are skipped."""
    report = BulkReport("Import", requested=len(preview.changes))
    total = len(preview.changes)
    for n, change in enumerate(preview.changes, 1):
        try:
            version = _apply_one(catalog, change, author)
            if version is None:
                report.skipped.append((change.image_id, "kept the caption a person wrote"))
            else:
                report.changed += 1
        except ConflictError:
            report.skipped.append((change.image_id, "changed since the preview; preview again"))
        except NotFoundError:
            report.missing += 1
        if n % 200 == 0 or n == total:
            progress(n, total, "importing")
    log.info("%s", report.summary().splitlines()[0])
    return report


def _apply_one(catalog: Catalog, change: PlannedChange, author: str) -> int | None:
    """Apply one change: a new caption is ``imported`` (unreviewed); attributes alone keep caption, source, state."""
    if not change.caption_changes:
        record = catalog.get(change.image_id)
        if record.version != change.version:
            raise ConflictError(f"{change.image_id[:12]} changed since the preview")
        return catalog.set_caption(
            change.image_id,
            record.caption,
            record.caption_source or "imported",
            attributes=change.new_attributes,
            model=record.caption_model,
            prompt_version=record.prompt_version,
            author=author,
            review_state=record.review_state,
            expected_version=change.version,
        )
    return catalog.set_caption(
        change.image_id,
        change.new_caption,
        "imported",
        attributes=change.new_attributes,
        author=author,
        expected_version=change.version,
        overwrite_human=False,
    )


def plan_to_state(preview: ImportPreview) -> list[dict[str, Any]]:
    """A preview's changes as plain dicts (kept in the app's session state between preview and apply)."""
    return [change.__dict__.copy() for change in preview.changes]


def plan_from_state(state: list[dict[str, Any]]) -> ImportPreview:
    """Rebuild a preview from :func:`plan_to_state`'s dicts."""
    changes = [PlannedChange(**item) for item in state or []]
    return ImportPreview(rows=len(changes), changes=changes)
