"""Bulk curation: approve, reject, delete (from the index too) or re-caption many images at once."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carmatch.catalog import REVIEW_STATES, Catalog
from carmatch.dataset.curation import DEFAULT_AUTHOR
from carmatch.errors import InvalidInputError
from carmatch.progress import Progress, no_progress
from carmatch.thumbs import remove_thumbnails

log = logging.getLogger(__name__)


BULK_CHUNK = 500


@dataclass
class BulkReport:
    """What a bulk action changed."""

    action: str
    requested: int = 0
    changed: int = 0
    unchanged: int = 0
    missing: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines for the CLI and the app."""
        lines = [f"{self.action}: {self.changed} changed of {self.requested} selected"]
        if self.unchanged:
            lines[0] += f", {self.unchanged} already so"
        if self.missing:
            lines[0] += f", {self.missing} no longer in the collection"
        if self.skipped:
            lines[0] += f", {len(self.skipped)} skipped"
        lines[0] += "."
        lines.extend(self.notes)
        for image_id, reason in self.skipped[:20]:
            lines.append(f"  skipped {image_id[:12]}: {reason}")
        if len(self.skipped) > 20:
            lines.append(f"  ... and {len(self.skipped) - 20} more skipped")
        return "\n".join(lines)


def bulk_review(
    catalog: Catalog,
    image_ids: Sequence[str],
    state: str,
    author: str = DEFAULT_AUTHOR,
    progress: Progress = no_progress,
    overturn_rejected: bool = False,
) -> BulkReport:
    """Set the review state of many images; each gets a history row.

    Approving skips uncaptioned images and, unless ``overturn_rejected``, rejected ones (a person's rejection stands).
    """
    if state not in REVIEW_STATES:
        raise InvalidInputError(f"Unknown review state {state!r}; use one of {REVIEW_STATES}")
    ids = list(dict.fromkeys(image_ids))
    report = BulkReport({"approved": "Approve", "rejected": "Reject"}.get(state, "Reset"), requested=len(ids))
    for start in range(0, len(ids), BULK_CHUNK):
        chunk = ids[start : start + BULK_CHUNK]
        records = catalog.get_many(chunk)
        with catalog.transaction():
            for image_id in chunk:
                record = records.get(image_id)
                if record is None:
                    report.missing += 1
                elif record.review_state == state:
                    report.unchanged += 1
                elif state == "approved" and not record.caption:
                    report.skipped.append((image_id, "no caption to approve"))
                elif state == "approved" and record.review_state == "rejected" and not overturn_rejected:
                    report.skipped.append((image_id, "rejected (tick 'also approve rejected' to overturn)"))
                else:
                    catalog.set_review_state(image_id, state, author=author, expected_version=record.version)
                    report.changed += 1
        progress(min(start + BULK_CHUNK, len(ids)), len(ids), report.action.lower())
    log.info("%s", report.summary().splitlines()[0])
    return report


def bulk_delete(
    catalog: Catalog,
    store: Any,
    image_ids: Sequence[str],
    delete_files_under: Path | None = None,
    progress: Progress = no_progress,
    thumbs_dir: Path | None = None,
) -> BulkReport:
    """Remove images from the collection and the saved index at once (files kept unless asked).

    ``store`` is the runtime's vector store (hnswlib or Milvus); the saved index loses the ids immediately, so searches
    stop returning them. The catalog and the index change under the index write lock, so a model
    activation builds its index either before the delete (which then removes the ids from it) or
    after. With ``delete_files_under`` set, files inside that folder (the uploads folder) are
    deleted too; files elsewhere are never touched. With ``thumbs_dir`` set, the images' cached
    thumbnails are deleted, so the app no longer serves them.
    """
    ids = list(dict.fromkeys(image_ids))
    report = BulkReport("Delete", requested=len(ids))
    with store.write_lock.holding("bulk delete", progress):
        live = catalog.get_many(ids)
        report.missing = len(ids) - len(live)
        for start in range(0, len(ids), BULK_CHUNK):
            report.changed += catalog.delete_images([i for i in ids[start : start + BULK_CHUNK] if i in live])
            progress(min(start + BULK_CHUNK, len(ids)), len(ids), "deleting")
        removed = remove_from_index(store, list(live))
    report.notes.append(f"Removed {removed} from the search index; history is kept in the catalog.")
    if thumbs_dir is not None:
        remove_thumbnails(thumbs_dir, list(live))
    if delete_files_under is not None:
        root = Path(delete_files_under).resolve()
        deleted = kept = 0
        for record in live.values():
            path = Path(record.path).resolve()
            if path.is_relative_to(root) and path.is_file():
                path.unlink()
                deleted += 1
            else:
                kept += 1
        report.notes.append(f"Deleted {deleted} uploaded file(s); {kept} file(s) outside the uploads folder were kept.")
    return report


def remove_from_index(store: Any, image_ids: Sequence[str]) -> int:
    """Remove ids from the saved index and save a new generation; returns how many were there."""
    if not image_ids:
        return 0
    with store.write_lock:  # load, remove and save with no other writer in between
        if not store.exists():
            return 0
        index = store.load()
        removed = int(index.remove(image_ids))
        if removed:
            store.save(index)
    return removed


def caption_with_claude(
    catalog: Catalog, settings: Any, image_ids: Sequence[str], client: Any = None, progress: Progress = no_progress
) -> str:
    """Re-caption images live with Claude on Bedrock (human captions kept); returns the summary."""
    from carmatch.captions.live import caption_selected

    return caption_selected(catalog, settings, list(image_ids), client=client, progress=progress).summary()
