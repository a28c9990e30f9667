"""The curation panel's events as plain functions: likely mistakes, near-duplicate groups, the map.

Computing (scoring every caption, comparing every image, projecting the map) is an admin action:
it re-checks the session's password, runs with progress, and its result is cached per model and
caption version (:mod:`carmatch.dataset.curation_cache`). Reading a cached result is open to every
visitor. Deleting a copy goes through the one delete path of bulk actions
(:func:`carmatch.dataset.bulk.bulk_delete`: out of the catalog and the index under the write lock,
thumbnails removed, one undo entry), admin only and after confirmation.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carmatch.dataset import bulk as bulk_ops
from carmatch.dataset.collection_map import MAX_DRAWN_POINTS, CollectionMap, collection_map, downsample, point_labels
from carmatch.dataset.curation_cache import load_result
from carmatch.dataset.curation_jobs import BackgroundJobs, Work
from carmatch.dataset.duplicates import DEFAULT_COSINE, DuplicateGroup, find_duplicates
from carmatch.dataset.suspects import Suspect, cached_scores, find_suspects
from carmatch.errors import InvalidInputError
from carmatch.progress import Progress, no_progress
from carmatch.runtime import Runtime
from carmatch.thumbs import thumbnail_path
from carmatch.ui.dataset_actions import require_admin
from carmatch.ui.phrasing import phrased
from carmatch.ui.thumbnails import FILE_ROUTE, gallery_image

SHOWN_SUSPECTS = 48
SUSPECT_HEADERS = ["#", "score", "why", "caption", "file", "review state"]
SHOWN_SELECTION = 120
NOT_COMPUTED = "Not computed for the active model yet: unlock editing and press **{}**."
JOB_KINDS = ("suspects", "duplicates", "map")
_JOBS: weakref.WeakKeyDictionary[Runtime, BackgroundJobs] = weakref.WeakKeyDictionary()


@dataclass
class Listing:
    """A gallery of images with a label each, their ids in order, and a note above them."""

    note: str
    gallery: list[tuple[Any, str]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)  # the suspects' table: SUSPECT_HEADERS, in gallery order


def _tile(runtime: Runtime, image_id: str, path: str) -> Any:
    return gallery_image(runtime.settings.thumbs_dir, image_id, path)


# -- background jobs -------------------------------------------------------------------------
def jobs_of(runtime: Runtime) -> BackgroundJobs:
    """The background curation jobs of one runtime (one app)."""
    if runtime not in _JOBS:
        _JOBS[runtime] = BackgroundJobs()
    return _JOBS[runtime]


@phrased
def start_job(runtime: Runtime, session_password: str | None, kind: str) -> str:
    """Start scoring, the duplicate scan or the map in the background (admin); the line to show."""
    require_admin(runtime, session_password)
    if kind not in JOB_KINDS:
        raise InvalidInputError(field="kind", value=kind, limit=JOB_KINDS, label="curation job")
    embedder = runtime.embedder  # loaded here, so a missing model is told now, not in the thread
    home, catalog = runtime.settings.home, runtime.catalog
    work: dict[str, Work] = {
        "suspects": lambda progress, stop: find_suspects(catalog, embedder, home, progress, stop),
        "duplicates": lambda progress, stop: find_duplicates(
            catalog, embedder.model_key, home, DEFAULT_COSINE, progress, stop
        ),
        "map": lambda progress, stop: collection_map(catalog, embedder.model_key, home, progress, stop),
    }
    if not jobs_of(runtime).start(kind, work[kind]):
        return "Already running in the background: its progress is shown here."
    return "Started in the background: you can keep reviewing; the result appears here when it is done."


def job_line(runtime: Runtime, kind: str) -> tuple[str, bool]:
    """The progress line of a background job and whether it is still running."""
    status = jobs_of(runtime).status(kind)
    if status is None:
        return "", False
    return status.describe(), status.running


@phrased
def stop_jobs(runtime: Runtime, session_password: str | None) -> str:
    """Ask every running curation job to stop (what they finished is kept for the next run)."""
    require_admin(runtime, session_password)
    stopped = [kind for kind in JOB_KINDS if jobs_of(runtime).cancel(kind)]
    return f"Stopping: {', '.join(stopped)}." if stopped else "Nothing is running."


# -- likely mistakes -------------------------------------------------------------------------
def suspects_listing(runtime: Runtime, suspects: Sequence[Suspect], skipped: int, top: int) -> Listing:
    """The most suspect captions as tiles labelled with score and reason."""
    if not suspects:
        return Listing("No captioned images with an embedding under the active model yet.")
    shown = list(suspects[:top])
    note = f"**{len(shown)} of {len(suspects)} captions, most likely wrong first.** Click one to open it in the editor."
    if skipped:
        note += f" {skipped} captioned image(s) are not indexed under this model yet."
    tiles = [(_tile(runtime, s.image_id, s.path), f"{s.score:.2f} · {s.reason}") for s in shown]
    rows = [
        [n + 1, round(s.score, 2), s.reason, s.caption, Path(s.path).name, s.review_state] for n, s in enumerate(shown)
    ]
    return Listing(note, tiles, [s.image_id for s in shown], rows)


def cached_suspects(runtime: Runtime, top: int = SHOWN_SUSPECTS) -> Listing:
    """The suspects computed last for the active model (anyone may look), or how to compute them."""
    key = runtime.embedder.model_key
    cached = load_result(runtime.settings.home, "suspects", key, None)
    if cached is None:
        return Listing(NOT_COMPUTED.format("Find likely mistakes"))
    suspects = [Suspect(**row) for row in cached.get("suspects", [])]
    live = runtime.catalog.get_many([s.image_id for s in suspects[: top * 2]])
    return suspects_listing(runtime, [s for s in suspects if s.image_id in live], cached.get("skipped", 0), top)


@phrased
def compute_suspects(
    runtime: Runtime, session_password: str | None, top: int = SHOWN_SUSPECTS, progress: Progress = no_progress
) -> Listing:
    """Score every caption under the active model (cached until a caption or the model changes)."""
    require_admin(runtime, session_password)
    report = find_suspects(runtime.catalog, runtime.embedder, runtime.settings.home, progress)
    return suspects_listing(runtime, report.suspects, report.skipped, top)


# -- near-duplicates -------------------------------------------------------------------------
def group_choices(groups: Sequence[DuplicateGroup]) -> list[str]:
    """One dropdown entry per group."""
    return [f"group {n + 1}: {len(g.members)} images (cosine ≥ {g.cosine:.3f})" for n, g in enumerate(groups)]


def _groups_from_cache(runtime: Runtime) -> list[DuplicateGroup] | None:
    rows = load_result(runtime.settings.home, "duplicates", runtime.embedder.model_key, None)
    if rows is None:
        return None
    return [DuplicateGroup(r["keep"], r["members"], r["cosine"]) for r in rows]


@phrased
def compute_duplicates(
    runtime: Runtime, session_password: str | None, progress: Progress = no_progress
) -> list[DuplicateGroup]:
    """Find the near-duplicate groups (and keep each group on one side of the split)."""
    require_admin(runtime, session_password)
    key = runtime.embedder.model_key
    return find_duplicates(runtime.catalog, key, runtime.settings.home, DEFAULT_COSINE, progress)


def cached_groups(runtime: Runtime) -> list[DuplicateGroup]:
    """The groups found last under the active model, without the images deleted since (empty when none)."""
    groups = _groups_from_cache(runtime) or []
    live = set(runtime.catalog.get_many([m for g in groups for m in g.members]))
    out = []
    for g in groups:
        members = [m for m in g.members if m in live]
        if len(members) > 1:
            out.append(DuplicateGroup(members[0] if g.keep not in members else g.keep, members, g.cosine))
    return out


def group_listing(runtime: Runtime, groups: Sequence[DuplicateGroup], choice: str | None) -> Listing:
    """The chosen group's images side by side, the suggested keeper first."""
    if not groups:
        return Listing("No near-duplicates found (or not searched yet under the active model).")
    names = group_choices(groups)
    index = names.index(choice) if choice in names else 0
    group = groups[index]
    records = runtime.catalog.get_many(group.members)
    tiles = []
    for member in group.members:
        record = records[member]
        role = "keep (most pixels)" if member == group.keep else "copy"
        tiles.append((_tile(runtime, member, record.path), f"{role} · {record.width}×{record.height} · {member[:10]}"))
    note = f"**{names[index]}** — tick the copies to delete (the suggested keeper is first); they stay one split group."
    return Listing(note, tiles, list(group.members))


@phrased
def delete_copies(
    runtime: Runtime,
    session_password: str | None,
    ids: Sequence[str],
    chosen: Sequence[str],
    confirmed: bool,
    progress: Progress = no_progress,
) -> str:
    """Delete the ticked copies of one group through the Dataset tab's delete path (never every member)."""
    require_admin(runtime, session_password)
    picked = [i for i in ids if i in set(chosen)]
    if not picked:
        raise InvalidInputError("Tick the copies to delete first.")
    if len(picked) == len(ids):
        raise InvalidInputError("Keep at least one image of the group: untick one.")
    if not confirmed:
        raise InvalidInputError(f"Tick 'confirm' to remove {len(picked)} image(s) from the collection.")
    report = bulk_ops.bulk_delete(runtime.catalog, runtime.store, picked, None, progress, runtime.settings.thumbs_dir)
    return report.summary()


# -- the map ---------------------------------------------------------------------------------
def _thumb_url(runtime: Runtime, image_id: str, path: str) -> str:
    """The served thumbnail of an image when it was made already ('' otherwise: no work per point)."""
    cached = thumbnail_path(runtime.settings.thumbs_dir, image_id, path)
    return f"{FILE_ROUTE}{cached}" if cached.is_file() else ""


def map_figure_for(
    runtime: Runtime,
    session_password: str | None,
    colour_by: str,
    compute: bool = False,
    progress: Progress = no_progress,
) -> Any:
    """The map's figure coloured by ``colour_by``: the cached map, or computed when ``compute`` (admin)."""
    from carmatch.ui.curation_figure import map_figure

    key = runtime.embedder.model_key
    if compute:
        require_admin(runtime, session_password)
    mapped = collection_map(runtime.catalog, key, runtime.settings.home, progress) if compute else _cached_map(runtime)
    if mapped is None:
        raise InvalidInputError(NOT_COMPUTED.format("Compute map").replace("**", ""))
    drawn = downsample(len(mapped.ids), MAX_DRAWN_POINTS)
    ids = [mapped.ids[i] for i in drawn]
    records = runtime.catalog.get_many(ids)
    scores = cached_scores(runtime.settings.home, key) if colour_by == "suspect score" else None
    labels = point_labels(records, ids, colour_by, scores)
    hover = [_hover(records.get(i), i) for i in ids]
    thumbs = [_thumb_url(runtime, i, records[i].path) if i in records else "" for i in ids]
    return map_figure(mapped.xy[drawn], ids, labels, hover, colour_by, len(mapped.ids), thumbs)


def _cached_map(runtime: Runtime) -> CollectionMap | None:
    import numpy as np

    cached = load_result(runtime.settings.home, "map", runtime.embedder.model_key, None)
    if cached is None:
        return None
    return CollectionMap(cached["ids"], np.asarray(cached["xy"], dtype=np.float32).reshape(-1, 2), "")


def _hover(record: Any, image_id: str) -> str:
    if record is None:
        return f"{image_id[:12]} (deleted)"
    caption = (record.caption or "no caption")[:90]
    return f"<b>{Path(record.rel_path or record.path).name}</b><br>{caption}<br>{record.review_state}"


def selection_listing(runtime: Runtime, selected: str) -> Listing:
    """The images picked on the map (ids separated by commas or spaces) as tiles."""
    ids = [i for i in selected.replace(",", " ").split() if i][:5000]
    if not ids:
        return Listing("Select points on the map (box or lasso) to see those images here.")
    records = runtime.catalog.get_many(ids[:SHOWN_SELECTION])
    tiles = [(_tile(runtime, i, r.path), (r.caption or "")[:80]) for i, r in records.items()]
    note = f"**{len(ids)} point(s) selected**" + (
        f"; the first {SHOWN_SELECTION} shown." if len(ids) > SHOWN_SELECTION else "."
    )
    return Listing(note + " Click one to open it in the editor.", tiles, list(records))
