"""Bulk curation: approve, reject, delete (from the index too) or re-caption many images at once.

Each approve, reject or delete that changes anything is logged as one entry (a ``bulk`` job in the
catalog, with the version each image reached), so :func:`undo_bulk` takes the whole action back in
one step, image by image, skipping any image someone changed since. Callers that showed the
reviewer a selection pass the versions they showed (``expected_versions``): an image changed since
is skipped and reported, never approved unseen.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from carmatch.catalog import REVIEW_STATES, Catalog
from carmatch.dataset import curation
from carmatch.dataset.curation import DEFAULT_AUTHOR
from carmatch.errors import CarmatchError, InvalidInputError, NotFoundError
from carmatch.progress import Progress, no_progress
from carmatch.thumbs import remove_thumbnails

log = logging.getLogger(__name__)


BULK_CHUNK = 500
BULK_JOB_KIND = "bulk"  # one jobs row per logged bulk action; its records: (image id, image id, outcome)
DONE, UNDONE = "done", "undone"
DELETED = "deleted"  # a delete's record outcome; a review's outcome is the version it wrote ("v7")
CHANGED_SINCE = "changed by another editor since you selected it"


@dataclass
class BulkAction:
    """One logged bulk action, as the undo list shows it."""

    id: str
    action: str
    count: int
    author: str
    created_at: str
    status: str
    undoable: bool

    def describe(self) -> str:
        """One line: what, how many, when, and whether it can still be undone."""
        when = self.created_at.replace("T", " ")[:16] + " UTC"
        tail = "undone" if self.status == UNDONE else ("can be undone" if self.undoable else "cannot be undone")
        return f"{self.action} {self.count} image(s) by {self.author} at {when} ({self.id}; {tail})"


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
    action_id: str | None = None  # the logged entry :func:`undo_bulk` takes back

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
        if self.action_id:
            lines.append("Undo all of it in one step: Undo last bulk action (or `carmatch dataset undo-bulk`).")
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
    expected_versions: Mapping[str, int] | None = None,
) -> BulkReport:
    """Set the review state of many images; each gets a history row, the action one undo entry.

    Approving skips uncaptioned images and, unless ``overturn_rejected``, rejected ones (a person's rejection stands).
    With ``expected_versions`` an image whose version differs from the one the reviewer saw is skipped.
    """
    if state not in REVIEW_STATES:
        raise InvalidInputError(f"Unknown review state {state!r}; use one of {REVIEW_STATES}")
    ids = list(dict.fromkeys(image_ids))
    name = {"approved": "Approve", "rejected": "Reject"}.get(state, "Reset")
    report = BulkReport(name, requested=len(ids))
    log_id = _new_action_id()
    logged = False
    for start in range(0, len(ids), BULK_CHUNK):
        chunk = ids[start : start + BULK_CHUNK]
        records = catalog.get_many(chunk)
        with catalog.transaction():
            outcomes: list[tuple[str, str, str]] = []
            for image_id in chunk:
                record = records.get(image_id)
                seen = (expected_versions or {}).get(image_id)
                if record is None:
                    report.missing += 1
                elif seen is not None and record.version != int(seen):
                    report.skipped.append((image_id, CHANGED_SINCE))
                elif record.review_state == state:
                    report.unchanged += 1
                elif state == "approved" and not record.caption:
                    report.skipped.append((image_id, "no caption to approve"))
                elif state == "approved" and record.review_state == "rejected" and not overturn_rejected:
                    report.skipped.append((image_id, "rejected (tick 'also approve rejected' to overturn)"))
                else:
                    version = catalog.set_review_state(image_id, state, author=author, expected_version=record.version)
                    outcomes.append((image_id, image_id, f"v{version}"))
                    report.changed += 1
            if outcomes:
                if not logged:
                    _log_action(catalog, log_id, name.lower(), author)
                    logged = True
                catalog.add_job_records(log_id, outcomes)
        progress(min(start + BULK_CHUNK, len(ids)), len(ids), report.action.lower())
    if logged:
        catalog.update_job(log_id, status=DONE)
        report.action_id = log_id
    log.info("%s", report.summary().splitlines()[0])
    return report


def bulk_delete(
    catalog: Catalog,
    store: Any,
    image_ids: Sequence[str],
    delete_files_under: Path | None = None,
    progress: Progress = no_progress,
    thumbs_dir: Path | None = None,
    expected_versions: Mapping[str, int] | None = None,
    author: str = DEFAULT_AUTHOR,
) -> BulkReport:
    """Remove images from the collection and the saved index at once (files kept unless asked).

    ``store`` is the runtime's vector store (hnswlib or Milvus); the saved index loses the ids immediately, so searches
    stop returning them. The catalog and the index change under the index write lock, so a model
    activation builds its index either before the delete (which then removes the ids from it) or
    after. With ``delete_files_under`` set, files inside that folder (the uploads folder) are
    deleted too; files elsewhere are never touched. With ``thumbs_dir`` set, the images' cached
    thumbnails are deleted, so the app no longer serves them. Unless files were deleted, the whole
    delete is one undo entry (:func:`undo_bulk` brings the images back into the catalog and index).
    """
    ids = list(dict.fromkeys(image_ids))
    report = BulkReport("Delete", requested=len(ids))
    log_id = _new_action_id() if delete_files_under is None else None
    with store.write_lock.holding("bulk delete", progress):
        live = catalog.get_many(ids)
        report.missing = len(ids) - len(live)
        for image_id, record in list(live.items()):
            seen = (expected_versions or {}).get(image_id)
            if seen is not None and record.version != int(seen):
                report.skipped.append((image_id, CHANGED_SINCE))
                del live[image_id]
        if log_id and live:
            _log_action(catalog, log_id, "delete", author)
        wanted = [i for i in ids if i in live]
        for start in range(0, len(wanted), BULK_CHUNK):
            chunk = wanted[start : start + BULK_CHUNK]
            with catalog.transaction():
                report.changed += catalog.delete_images(chunk)
                if log_id:
                    catalog.add_job_records(log_id, [(i, i, DELETED) for i in chunk])
            progress(min(start + BULK_CHUNK, len(wanted)), len(wanted), "deleting")
        removed = remove_from_index(store, list(live))
        if log_id and live:
            catalog.update_job(log_id, status=DONE)
            report.action_id = log_id
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


# -- the undo log ----------------------------------------------------------------------------
def _new_action_id() -> str:
    return f"bulk-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S-%f')}-{secrets.token_hex(2)}"


def _log_action(catalog: Catalog, action_id: str, action: str, author: str) -> None:
    """Start the undo entry of one bulk action (its records are added with each chunk's changes)."""
    catalog.insert_job(action_id, BULK_JOB_KIND, "running", "", "", {"action": action, "author": author}, [])


def bulk_actions(catalog: Catalog, limit: int = 20) -> list[BulkAction]:
    """The logged bulk actions, newest first; only the newest one not yet undone can be undone."""
    rows = sorted(catalog.jobs(BULK_JOB_KIND), key=lambda row: row.id, reverse=True)  # ids sort by time
    newest_open = next((row.id for row in rows if row.status == DONE), None)
    return [
        BulkAction(
            id=row.id,
            action=str(row.params.get("action", "?")),
            count=sum(row.records.values()),
            author=str(row.params.get("author", "")),
            created_at=row.created_at,
            status=row.status,
            undoable=row.id == newest_open,
        )
        for row in rows[:limit]
    ]


def undo_bulk(
    catalog: Catalog,
    store: Any,
    action_id: str | None = None,
    author: str = DEFAULT_AUTHOR,
    progress: Progress = no_progress,
) -> BulkReport:
    """Take back the newest bulk action (or ``action_id``, which must be it) in one step.

    Each image returns to the state it had before, as a new version (history keeps everything);
    an image changed since the bulk action is skipped and reported. A delete is undone by bringing
    the images back into the catalog and the index (from their cached embeddings).
    """
    actions = bulk_actions(catalog, limit=10_000)
    target = next((a for a in actions if a.undoable), None)
    if action_id:
        chosen = next((a for a in actions if a.id == action_id), None)
        if chosen is None:
            raise NotFoundError(f"No bulk action {action_id!r}; `carmatch dataset undo-bulk --list` shows them.")
        if chosen.status == UNDONE:
            raise InvalidInputError(f"Bulk action {action_id} was already undone.")
        if target is None or chosen.id != target.id:
            raise InvalidInputError(
                f"Only the newest bulk action can be undone in one step ({target.id if target else 'none left'}); "
                "undo newer ones first."
            )
    if target is None:
        raise InvalidInputError("No bulk action to undo.")
    records = catalog.job_records(target.id)
    report = BulkReport(f"Undo {target.action}", requested=len(records))
    if target.action == "delete":
        _undo_delete(catalog, store, [image_id for _, image_id, _ in records], report, progress)
    else:
        for done, (_, image_id, outcome) in enumerate(records, start=1):
            _undo_review(catalog, image_id, outcome, author, report)
            if done % BULK_CHUNK == 0 or done == len(records):
                progress(done, len(records), "undoing")
    catalog.update_job(target.id, status=UNDONE, message=report.summary().splitlines()[0])
    log.info("%s", report.summary().splitlines()[0])
    return report


def _undo_review(catalog: Catalog, image_id: str, outcome: str, author: str, report: BulkReport) -> None:
    try:
        record = catalog.get(image_id)
    except NotFoundError:
        report.missing += 1
        return
    if f"v{record.version}" != outcome:
        report.skipped.append((image_id, "changed since the bulk action; use Undo on the image"))
        return
    try:
        curation.undo(catalog, image_id, record.version, author=author)
        report.changed += 1
    except CarmatchError as exc:
        report.skipped.append((image_id, str(exc).splitlines()[0]))


def _undo_delete(
    catalog: Catalog, store: Any, image_ids: Sequence[str], report: BulkReport, progress: Progress
) -> None:
    with store.write_lock.holding("undo bulk delete", progress):
        report.changed = catalog.restore_images(image_ids)
        report.unchanged = len(image_ids) - report.changed
        if not store.exists():
            return
        index = store.load()
        cached = catalog.get_embeddings(index.manifest.model_key, [i for i in image_ids if i not in index])
        if cached:
            index.add(list(cached), np.stack(list(cached.values())))
            store.save(index)
        missing = sum(1 for i in image_ids if i not in index)
        if missing:
            report.notes.append(f"{missing} image(s) had no stored embedding: run `carmatch index rebuild`.")
        report.notes.append(f"Returned {len(cached)} image(s) to the search index.")
