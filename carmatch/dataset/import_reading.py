"""Reading a captions file (CSV or JSONL) into rows: one value per cell, control characters removed.

The one reader of `dataset import`, the app's import panel and `ingest --captions` text: a file that is not a
regular file, too big, not UTF-8, an unterminated CSV quote or a JSON line nested too deep is one clear error.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carmatch.catalog import ATTRIBUTE_COLUMNS
from carmatch.errors import InvalidInputError

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


# -- reading ---------------------------------------------------------------------------------
def read_import_file(path: Path) -> tuple[list[ImportRow], list[str]]:
    """Rows of a captions CSV or JSONL file and the names of columns that were ignored."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():  # a device (/dev/zero), a FIFO or a folder: never read on
            raise InvalidInputError(f"{path} is not a regular file: give a CSV or JSONL file.")
        with path.open("rb") as fh:
            data = fh.read(MAX_IMPORT_BYTES + 1)
        if len(data) > MAX_IMPORT_BYTES:
            raise InvalidInputError(f"{path.name} is over 200 MB; split it into files under 200 MB.")
        text = data.decode("utf-8-sig")
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
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)  # an unterminated quote: an error
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
        except RecursionError as exc:  # a line nested thousands of levels deep
            raise InvalidInputError(f"{name}:{number}: the JSON is nested too deeply to be a caption row.") from exc
        if not isinstance(data, dict):
            raise InvalidInputError(f"{name}:{number}: each line must be a JSON object with file or id and caption.")
        if len(rows) >= MAX_IMPORT_ROWS:
            raise InvalidInputError(f"{name}: more than {MAX_IMPORT_ROWS} rows; split the file.")
        rows.append(_row_from_mapping(data, number, name, ignored))
    return rows, sorted(ignored)
