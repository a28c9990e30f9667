"""Files an ingest meets, recorded in the catalog: known unchanged files, new images, moved locations.

Shared by the local pipeline (which decodes in this process) and the Ray engine (whose workers decode
and send back :class:`ImageFacts`): one set of rules for what a file already recorded, deleted, moved
or duplicated means.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from carmatch.catalog import Catalog, ImageRecord
from carmatch.errors import NotFoundError

if TYPE_CHECKING:
    from carmatch.ingest.pipeline import IngestReport


@dataclass(frozen=True)
class ImageFacts:
    """What the catalog records about a decoded image file: its id (content hash), size and format."""

    sha256: str
    width: int
    height: int
    format: str
    size_bytes: int


@dataclass(frozen=True)
class FoundFile:
    """A file as found: its resolved path, its path under the ingest root, its stat and, when known, its id."""

    resolved: Path
    rel: str | None
    stat: os.stat_result
    known: str | None  # the id of the image the catalog recorded for this unchanged file


class FileRecorder:
    """Looks files up in the catalog and records new ones, counting what happened in an IngestReport."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    def lookup(self, path: Path, root: Path | None, report: IngestReport) -> FoundFile | None:
        """The file's place and stat, and its id when the catalog knows it unchanged (its location noted then).

        None when there is nothing to do: it cannot be read, or its image was deleted from the collection.
        """
        resolved = path.expanduser().resolve()
        rel = str(resolved.relative_to(root)) if root is not None and resolved.is_relative_to(root) else None
        try:
            stat = resolved.stat()
        except OSError as exc:
            report.skipped.append((str(path), f"cannot read ({exc.strerror or exc})"))
            return None
        known = self.catalog.lookup_file(str(resolved), stat.st_size, stat.st_mtime)
        if known is not None and self.catalog.is_deleted(known):
            report.deleted_skipped += 1
            return None
        if known is not None:
            try:
                self.note_location(self.catalog.get(known), resolved, root, rel, report)
                return FoundFile(resolved, rel, stat, known)
            except NotFoundError:  # row vanished: read the file again
                pass
        return FoundFile(resolved, rel, stat, None)

    def record(self, found: FoundFile, root: Path | None, facts: ImageFacts, report: IngestReport) -> str | None:
        """Record a file just decoded and validated (here or on a Ray worker); its id, None when deleted earlier."""
        resolved, rel, stat = found.resolved, found.rel, found.stat
        if self.catalog.is_deleted(facts.sha256):
            report.deleted_skipped += 1
            self.catalog.remember_file(str(resolved), stat.st_size, stat.st_mtime, facts.sha256)
            return None
        root_str = str(root) if root is not None else None
        added = self.catalog.add_image(
            facts.sha256, str(resolved), facts.width, facts.height, facts.format, facts.size_bytes, root_str, rel
        )
        if added:
            report.added += 1
            report.added_ids.append(facts.sha256)
        else:
            self.note_location(self.catalog.get(facts.sha256), resolved, root, rel, report)
        self.catalog.remember_file(str(resolved), stat.st_size, stat.st_mtime, facts.sha256)
        return facts.sha256

    def note_location(
        self, record: ImageRecord, resolved: Path, root: Path | None, rel: str | None, report: IngestReport
    ) -> None:
        """A known image met again: move its location here when its old file is gone or this is another folder.

        An image is its content, so only the location changes; captions, history and reviews stay.
        A duplicate file in the same folder leaves the first location alone.
        """
        here = str(resolved)
        root_str = str(root) if root is not None else None
        moved = record.path != here and (
            not Path(record.path).exists() or (root_str is not None and record.root != root_str)
        )
        if moved:
            self.catalog.update_path(record.id, here, root_str, rel)
            report.relocated += 1
        else:
            report.present += 1
