"""Export image-caption pairs as CSV and JSONL (what fine-tuning reads); Titan JSONL is in titan_export.

Exports use approved captions; ``include_unreviewed`` adds unreviewed ones, never rejected ones.
Rows are read from the catalog in chunks (keyset on id), so memory stays flat at any size, and
every file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from carmatch.catalog import ATTRIBUTE_COLUMNS, Catalog, ImageRecord
from carmatch.errors import InvalidInputError

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("csv", "jsonl", "titan")  # titan: see carmatch.dataset.export_titan
CHUNK_ROWS = 1000


# -- shared ----------------------------------------------------------------------------------
def export_states(include_unreviewed: bool) -> tuple[str, ...]:
    """The review states an export takes (never ``rejected``)."""
    return ("approved", "unreviewed") if include_unreviewed else ("approved",)


def count_exportable(catalog: Catalog, include_unreviewed: bool = False) -> int:
    """How many captioned images an export would take."""
    states = export_states(include_unreviewed)
    marks = ",".join("?" * len(states))
    return int(
        catalog.execute(
            "SELECT COUNT(*) FROM images WHERE deleted_at IS NULL AND caption IS NOT NULL AND TRIM(caption) != ''"
            f" AND review_state IN ({marks})",
            states,
        )[0][0]
    )


def iter_exportable(catalog: Catalog, include_unreviewed: bool = False) -> Iterator[ImageRecord]:
    """Live captioned images in the exported review states, by id, read in chunks."""
    states = export_states(include_unreviewed)
    marks = ",".join("?" * len(states))
    last = ""
    while True:
        rows = catalog.execute(
            "SELECT * FROM images WHERE deleted_at IS NULL AND caption IS NOT NULL AND TRIM(caption) != ''"
            f" AND review_state IN ({marks}) AND id > ? ORDER BY id LIMIT ?",
            [*states, last, CHUNK_ROWS],
        )
        if not rows:
            return
        for row in rows:
            yield ImageRecord.from_row(row)
        last = rows[-1]["id"]


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
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        except OSError as exc:
            raise _unwritable(self.path, exc) from exc
        self.fh = os.fdopen(fd, "w", encoding="utf-8", newline="")
        return self.fh

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self.fh.flush()
                os.fsync(self.fh.fileno())
            self.fh.close()
            if exc_type is None:
                os.replace(self.tmp, self.path)
        except OSError as error:
            raise _unwritable(self.path, error) from error
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)


def _check_writable_target(path: Path) -> None:
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder; give the file to write, e.g. {path / 'pairs.csv'}.")


def _unwritable(path: Path, exc: OSError) -> InvalidInputError:
    return InvalidInputError(f"Cannot write {path}: {exc.strerror or exc}. Choose another output path.")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    _check_writable_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _unwritable(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise _unwritable(path, exc) from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclass
class ExportReport:
    """What an export wrote, skipped and warns about."""

    files: list[Path] = field(default_factory=list)
    records: int = 0
    train: int = 0
    validation: int = 0
    converted: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Lines for the CLI and the app."""
        lines = [f"Exported {self.records} pair(s) to {', '.join(str(f) for f in self.files)}."]
        if self.train or self.validation:
            lines.append(
                f"Titan: {self.train} training and {self.validation} validation record(s); "
                f"{self.converted} image(s) converted, {len(self.skipped)} skipped."
            )
        lines.extend(f"WARNING: {w}" for w in self.warnings)
        for image_id, reason in self.skipped[:30]:
            lines.append(f"  skipped {image_id[:12]}: {reason}")
        if len(self.skipped) > 30:
            lines.append(f"  ... and {len(self.skipped) - 30} more skipped (all listed in manifest.json)")
        return "\n".join(lines)


def export_csv(catalog: Catalog, out: Path, include_unreviewed: bool = False) -> ExportReport:
    """Write the pairs as CSV with columns id, file, caption, attributes, source, review_state."""
    report = ExportReport(files=[Path(out)])
    columns = ["id", "file", "caption", *ATTRIBUTE_COLUMNS, "source", "review_state"]
    with AtomicText(Path(out)) as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for record in iter_exportable(catalog, include_unreviewed):
            writer.writerow({k: ("" if v is None else v) for k, v in record_dict(record).items()})
            report.records += 1
    return report


def export_jsonl(catalog: Catalog, out: Path, include_unreviewed: bool = False) -> ExportReport:
    """Write the pairs as JSONL: one {"id", "file", "caption", attributes...} object a line."""
    report = ExportReport(files=[Path(out)])
    with AtomicText(Path(out)) as fh:
        for record in iter_exportable(catalog, include_unreviewed):
            fh.write(json.dumps(record_dict(record), ensure_ascii=False) + "\n")
            report.records += 1
    return report
