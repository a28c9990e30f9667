"""Export image-caption pairs as CSV and JSONL (what fine-tuning reads); Titan JSONL is in export_titan.

Exports take the training set (carmatch.dataset.training_set): approved captions, ``include_unreviewed``
adds unreviewed ones, never rejected ones; while nothing is approved, the unreviewed ones, with a
warning. Rows are read from the catalog in chunks (keyset on id), so memory stays flat at any size,
and every file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from carmatch.atomic import atomic_open, write_bytes
from carmatch.catalog import ATTRIBUTE_COLUMNS, Catalog, ImageRecord
from carmatch.dataset.training_set import iter_records, training_set
from carmatch.errors import InvalidInputError

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("csv", "jsonl", "titan")  # titan: see carmatch.dataset.export_titan


# -- shared ----------------------------------------------------------------------------------
FALLBACK_WARNING = (
    "No caption is approved yet, so this export holds the unreviewed captions (the training set's fallback, "
    "as fine-tuning uses); approve captions to export only approved ones."
)


def record_dict(record: ImageRecord) -> dict[str, Any]:
    """One exported pair: id, file, caption, the attribute columns, source and review state."""
    out: dict[str, Any] = {"id": record.id, "file": record.path, "caption": record.caption}
    for key in ATTRIBUTE_COLUMNS:
        out[key] = record.attributes.get(key)
    out["source"] = record.caption_source
    out["review_state"] = record.review_state
    return out


class AtomicText:
    """A text file written under a temporary name, fsynced and renamed into place on success."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __enter__(self) -> IO[str]:
        _check_writable_target(self.path)
        self._writer = atomic_open(self.path, "w", encoding="utf-8", newline="")  # the one atomic writer
        try:
            return self._writer.__enter__()
        except OSError as exc:
            raise _unwritable(self.path, exc) from exc

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self._writer.__exit__(exc_type, exc, tb)
        except OSError as error:
            if error is exc:
                raise
            raise _unwritable(self.path, error) from error


def _check_writable_target(path: Path) -> None:
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder; give the file to write, e.g. {path / 'pairs.csv'}.")


def _unwritable(path: Path, exc: OSError) -> InvalidInputError:
    return InvalidInputError(f"Cannot write {path}: {exc.strerror or exc}. Choose another output path.")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    _check_writable_target(path)
    try:
        write_bytes(path, data)
    except OSError as exc:
        raise _unwritable(path, exc) from exc


@dataclass
class ExportReport:
    """What an export wrote, skipped and warns about."""

    files: list[Path] = field(default_factory=list)
    records: int = 0
    train: int = 0
    validation: int = 0
    held_out: int = 0  # Titan: images of the test split, never exported for training
    converted: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Lines for the CLI and the app."""
        lines = [f"Exported {self.records} pair(s) to {', '.join(str(f) for f in self.files)}."]
        if self.train or self.validation:
            lines.append(
                f"Titan: {self.train} training and {self.validation} validation record(s); "
                f"{self.converted} image(s) converted, {len(self.skipped)} skipped; "
                f"{self.held_out} image(s) of the test split held out."
            )
        lines.extend(f"WARNING: {w}" for w in self.warnings)
        for image_id, reason in self.skipped[:30]:
            lines.append(f"  skipped {image_id[:12]}: {reason}")
        if len(self.skipped) > 30:
            lines.append(f"  ... and {len(self.skipped) - 30} more skipped (all listed in manifest.json)")
        return "\n".join(lines)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text starting =, +, -, @, tab or CR gets a leading quote (OWASP)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def export_csv(catalog: Catalog, out: Path, include_unreviewed: bool = False) -> ExportReport:
    """Write the pairs as CSV with columns id, file, caption, attributes, source, review_state."""
    report = ExportReport(files=[Path(out)])
    columns = ["id", "file", "caption", *ATTRIBUTE_COLUMNS, "source", "review_state"]
    chosen = training_set(catalog, include_unreviewed)
    with AtomicText(Path(out)) as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for record in iter_records(catalog, chosen):
            writer.writerow({k: csv_cell(v) for k, v in record_dict(record).items()})
            report.records += 1
    if chosen.source == "unreviewed" and report.records:
        report.warnings.append(FALLBACK_WARNING)
    return report


def export_jsonl(catalog: Catalog, out: Path, include_unreviewed: bool = False) -> ExportReport:
    """Write the pairs as JSONL: one {"id", "file", "caption", attributes...} object a line."""
    report = ExportReport(files=[Path(out)])
    chosen = training_set(catalog, include_unreviewed)
    with AtomicText(Path(out)) as fh:
        for record in iter_records(catalog, chosen):
            fh.write(json.dumps(record_dict(record), ensure_ascii=False) + "\n")
            report.records += 1
    if chosen.source == "unreviewed" and report.records:
        report.warnings.append(FALLBACK_WARNING)
    return report
