"""The Dataset tab's bulk actions as plain functions: picking thumbnails, running an action, undoing it.

Every write re-checks the session's password (:func:`carmatch.ui.dataset_actions.require_admin`).
A run on the picked thumbnails carries the versions the grid showed, so an image someone changed
since is skipped and reported, never approved unseen; each approve, reject or delete is one entry
that :func:`undo_last` takes back in one step (:mod:`carmatch.dataset.bulk`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from carmatch.dataset import bulk as bulk_ops
from carmatch.dataset import curation
from carmatch.errors import InvalidInputError
from carmatch.progress import Progress, no_progress
from carmatch.runtime import Runtime
from carmatch.ui.dataset_actions import APP_AUTHOR, require_admin
from carmatch.ui.phrasing import phrased

BULK_ACTIONS = ("approve", "reject", "delete", "caption with Claude")
SCOPE_SELECTED = "selected on this page"
SCOPE_MATCHING = "everything matching the filters"
PICKED_PREFIX = "picked · "  # before a picked tile's label; drawn as a badge by the page's script


def toggle_selection(ids: Sequence[str], chosen: Sequence[str], index: int) -> list[str]:
    """The picked ids after a click on thumbnail ``index`` in select mode (a second click unpicks it)."""
    if not 0 <= index < len(ids):
        return list(chosen)
    image_id = ids[index]
    return [i for i in chosen if i != image_id] if image_id in chosen else [*chosen, image_id]


def pick_range(ids: Sequence[str], chosen: Sequence[str], start: int, end: int) -> list[str]:
    """The picked ids after a shift-click: every thumbnail from ``start`` to ``end`` (either order) is picked."""
    low, high = sorted((max(0, start), min(end, len(ids) - 1)))
    span = [ids[i] for i in range(low, high + 1)]
    return [*chosen, *[i for i in span if i not in chosen]]


def selection_note(chosen: Sequence[str]) -> str:
    """How many thumbnails are picked for bulk actions."""
    return f"**{len(chosen)} selected** for bulk actions" if chosen else "Nothing selected for bulk actions"


def mark_selected(items: Sequence[Any] | None, ids: Sequence[str], chosen: Sequence[str]) -> list[tuple[str, str]]:
    """The grid's (thumbnail, label) items with the picked ones' labels marked ``picked``."""
    picked, marked = set(chosen), []
    for (thumb, caption), image_id in zip(items or [], ids):
        text = (caption or "").removeprefix(PICKED_PREFIX)
        marked.append((thumb, PICKED_PREFIX + text if image_id in picked else text))
    return marked


@phrased
def bulk(
    runtime: Runtime,
    session_password: str | None,
    action: str,
    scope: str,
    selected_ids: Sequence[str] | None,
    query: curation.Query,
    delete_files: bool = False,
    confirmed: bool = False,
    progress: Progress = no_progress,
    bedrock_client: Any = None,
    overturn_rejected: bool = False,
    seen_versions: Mapping[str, int] | None = None,
) -> str:
    """Run a bulk action on the picked images or on everything matching the filters; returns a report.

    Deleting, and any action on everything matching the filters, needs ``confirmed`` (the refusal gives
    the count). ``seen_versions`` (the grid page's) guards the picked images against later edits.
    """
    require_admin(runtime, session_password)
    if scope == SCOPE_MATCHING:
        ids = curation.matching_ids(runtime.catalog, query)
        seen = None  # the reviewer chose the filters, not images they had looked at
    else:
        ids = list(selected_ids or [])
        seen = {i: int(v) for i, v in (seen_versions or {}).items() if i in set(ids)}
    if not ids:
        raise InvalidInputError(
            "No images selected: tick some in the grid, or choose 'everything matching the filters'."
        )
    if scope == SCOPE_MATCHING and not confirmed:
        raise InvalidInputError(
            f"This would {action} all {len(ids)} image(s) matching the filters: tick 'confirm' and run again."
        )
    catalog = runtime.catalog
    if action in ("approve", "reject"):
        state = "approved" if action == "approve" else "rejected"
        overturn = overturn_rejected and action == "approve"
        return bulk_ops.bulk_review(catalog, ids, state, APP_AUTHOR, progress, overturn, seen).summary()
    if action == "delete":
        if not confirmed:
            raise InvalidInputError(f"Tick 'confirm' to remove {len(ids)} image(s) from the collection.")
        under = runtime.settings.uploads_dir if delete_files else None
        thumbs = runtime.settings.thumbs_dir
        report = bulk_ops.bulk_delete(catalog, runtime.store, ids, under, progress, thumbs, seen, APP_AUTHOR)
        return report.summary()
    if action == "caption with Claude":
        # with no client passed in, the captioner makes a bedrock-runtime client (carmatch.aws.make_client)
        return bulk_ops.caption_with_claude(catalog, runtime.settings, ids, bedrock_client, progress)
    raise InvalidInputError(f"Unknown bulk action {action!r}; use one of {', '.join(BULK_ACTIONS)}.")


def last_action_note(runtime: Runtime) -> str:
    """The newest bulk action that can be undone, in one line ('' when there is none)."""
    undoable = next((a for a in bulk_ops.bulk_actions(runtime.catalog, limit=50) if a.undoable), None)
    return f"Last bulk action: {undoable.describe()}" if undoable else "No bulk action to undo."


@phrased
def undo_last(runtime: Runtime, session_password: str | None, progress: Progress = no_progress) -> str:
    """Take back the newest bulk action in one step; returns the report."""
    require_admin(runtime, session_password)
    return bulk_ops.undo_bulk(runtime.catalog, runtime.store, author=APP_AUTHOR, progress=progress).summary()
