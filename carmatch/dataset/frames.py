"""Traffic frames as a whole: deleting a frame deletes every car cut from it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from carmatch.catalog import Catalog
from carmatch.dataset.bulk import BulkReport, bulk_delete
from carmatch.errors import NotFoundError
from carmatch.progress import Progress, no_progress


def delete_frames(
    catalog: Catalog,
    store: Any,
    frame_ids: Sequence[str],
    progress: Progress = no_progress,
    thumbs_dir: Path | None = None,
) -> BulkReport:
    """Delete frames and all their crops from the collection and the index (files and history are kept).

    The crops go first, then the frames are marked deleted, so an interruption in between leaves a frame
    whose cars are gone (a re-ingest keeps them gone) rather than cars without their frame.
    """
    unknown = [f for f in frame_ids if catalog.frame_state(f) is None]
    if unknown:
        raise NotFoundError(f"No frame with id {unknown[0]} in the collection.")
    crop_ids = catalog.frame_crop_ids(frame_ids)
    report = bulk_delete(catalog, store, crop_ids, progress=progress, thumbs_dir=thumbs_dir)
    frames = catalog.mark_frames_deleted(frame_ids)
    report.notes.insert(0, f"Deleted {frames} frame(s) and the {report.changed} car(s) cut from them.")
    return report
