"""Import captions from CSV or JSONL: read, preview what would change, then apply.

A row names its image by ``id`` (or a unique id prefix) or by ``file``: the path as ingested,
absolute or relative to the ingested folder. ``caption`` is required; the attribute columns
(color, body_type, make, model, viewpoint) are optional. Imported captions start unreviewed
and never replace a caption a person wrote.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from carmatch.catalog import ATTRIBUTE_COLUMNS, Catalog, ImageRecord
from carmatch.dataset.bulk import BulkReport
from carmatch.dataset.curation import MAX_CAPTION_CHARS, merge_attributes
from carmatch.errors import ConflictError, InvalidInputError, NotFoundError
from carmatch.images import sha256_bytes
from carmatch.progress import Progress, no_progress

log = logging.getLogger(__name__)


MAX_IMPORT_BYTES = 200 * 1024 * 1024
MAX_IMPORT_ROWS = 500_000
KNOWN_COLUMNS = ("id", "file", "caption", "attributes", *ATTRIBUTE_COLUMNS)


@dataclass
class ImportRow:
    """One row of an import file."""

    line: int
    caption: str
    id: str | None = None
    file: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    problem: str | None = None  # why the row is refused (a non-scalar value), reported per row

    @property
    def label(self) -> str:
        """How the row names its image, for messages."""
        return self.file or (self.id or "")[:16] or f"line {self.line}"


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

    def approvals_reset(self) -> list[PlannedChange]:
        """Changes whose new caption sends an approved image back to unreviewed."""
        return [c for c in self.changes if c.caption_changes and c.old_state == "approved"]

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
        reset = self.approvals_reset()
        if reset:
            lines.append(f"{len(reset)} approved caption(s) will return to unreviewed:")
            lines.extend(f"  {change.label}" for change in reset[:limit])
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


# -- reading ---------------------------------------------------------------------------------
def read_import_file(path: Path) -> tuple[list[ImportRow], list[str]]:
    """Rows of a captions CSV or JSONL file and the names of columns that were ignored."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_IMPORT_BYTES:
            raise InvalidInputError(f"{path.name} is {size / 1e6:.0f} MB; split it into files under 200 MB.")
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InvalidInputError(f"Cannot read the captions file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path.name} is not UTF-8 text; save it as UTF-8 CSV or JSONL.") from exc
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson") or (suffix != ".csv" and text.lstrip().startswith("{")):
        return _read_jsonl(text, path.name)
    return _read_csv(text, path.name)


def plain_text(value: str) -> str:
    """``value`` without NUL and other control characters (tabs and line breaks become spaces)."""
    return value.translate(_CONTROL_TABLE)


_CONTROL_TABLE = {c: (" " if chr(c) in "\t\n\r" else None) for c in (*range(32), 127, *range(0x80, 0xA0))}
_CONTROL_TABLE.update({c: None for c in (0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))})


def _scalar_text(key: str, value: Any) -> tuple[str, str | None]:
    """(clean text, None) for a scalar value; ("", reason) for a list, an object, NaN or infinity."""
    if value is None:
        return "", None
    if isinstance(value, (list, dict, tuple, set)):
        kind = "an object" if isinstance(value, dict) else "a list"
        return "", f"{key} must be a single value, not {kind}"
    if isinstance(value, float) and not math.isfinite(value):
        return "", f"{key} must be a real value, not {value}"
    return plain_text(str(value)), None


def _row_from_mapping(data: dict[str, Any], line: int, name: str, ignored: set[str]) -> ImportRow:
    clean = {str(k).strip().lower(): v for k, v in data.items() if k is not None}
    attrs: dict[str, str] = {}
    problems: list[str] = []
    nested = clean.get("attributes")
    if isinstance(nested, dict):
        for key, value in nested.items():
            key = str(key).strip().lower()
            if key in ATTRIBUTE_COLUMNS:
                attrs[key], problem = _scalar_text(key, value)
                problems.extend([problem] if problem else [])
            else:
                ignored.add(f"attributes.{key}")
    for key in ATTRIBUTE_COLUMNS:
        if key in clean and clean[key] not in (None, ""):
            attrs[key], problem = _scalar_text(key, clean[key])
            problems.extend([problem] if problem else [])
    ignored.update(k for k in clean if k not in KNOWN_COLUMNS)
    texts = {}
    for key in ("id", "file", "caption"):
        texts[key], problem = _scalar_text(key, clean.get(key))
        problems.extend([problem] if problem else [])
    image_id = texts["id"].strip() or None
    file = texts["file"].strip() or None
    problem_text = "; ".join(problems) or None
    return ImportRow(line, texts["caption"], image_id, file, attrs, problem_text)


def _read_csv(text: str, name: str) -> tuple[list[ImportRow], list[str]]:
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        if "caption" not in header or not ({"file", "id"} & set(header)):
            raise InvalidInputError(
                f"{name}: a captions CSV needs a caption column and a file or id column (found {header})."
            )
        ignored: set[str] = set()
        rows: list[ImportRow] = []
        for row in reader:
            if len(rows) >= MAX_IMPORT_ROWS:
                raise InvalidInputError(f"{name}: more than {MAX_IMPORT_ROWS} rows; split the file.")
            rows.append(_row_from_mapping(row, reader.line_num, name, ignored))
        return rows, sorted(ignored)
    except csv.Error as exc:
        raise InvalidInputError(f"{name}: not a valid CSV file ({exc}).") from exc


def _read_jsonl(text: str, name: str) -> tuple[list[ImportRow], list[str]]:
    ignored: set[str] = set()
    rows: list[ImportRow] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise InvalidInputError(f"{name}:{number}: not a JSON object ({exc.args[0]}).") from exc
        if not isinstance(data, dict):
            raise InvalidInputError(f"{name}:{number}: each line must be a JSON object with file or id and caption.")
        if len(rows) >= MAX_IMPORT_ROWS:
            raise InvalidInputError(f"{name}: more than {MAX_IMPORT_ROWS} rows; split the file.")
        rows.append(_row_from_mapping(data, number, name, ignored))
    return rows, sorted(ignored)


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


def preview_import(catalog: Catalog, rows: list[ImportRow], ignored_columns: list[str] | None = None) -> ImportPreview:
    """Match rows to images and work out what would change; changes nothing."""
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
        preview.changes.append(
            PlannedChange(
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
        )
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
