"""The Dataset tab's event logic as plain functions: tests call them with no browser.

Every function that changes anything takes the session's password (kept server-side in a
``gr.State`` after unlocking) and checks it again with :func:`carmatch.access.check_admin`.
Functions return plain data; :mod:`carmatch.ui.dataset_tab` turns it into component updates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from carmatch.access import READ_ONLY_NOTE, admin_enabled, check_admin, is_admin
from carmatch.catalog import ATTRIBUTE_COLUMNS, ImageRecord
from carmatch.catalog.schema import FILTER_ATTRIBUTES
from carmatch.dataset import bulk as bulk_ops
from carmatch.dataset import curation
from carmatch.errors import CarmatchError, InvalidInputError, NotFoundError
from carmatch.images import load_image
from carmatch.progress import Progress, no_progress
from carmatch.runtime import Runtime
from carmatch.ui.phrasing import as_code, as_text, phrased
from carmatch.ui.thumbnails import gallery_image

log = logging.getLogger(__name__)


ANY = "any"
APP_AUTHOR = "app"
PAGE_SIZE = 48
DETAIL_SIDE = 1024
STATE_MARKS = {"approved": "✅", "rejected": "⛔", "unreviewed": "•"}
BULK_ACTIONS = ("approve", "reject", "delete", "caption with Claude")
SCOPE_SELECTED = "selected on this page"
SCOPE_MATCHING = "everything matching the filters"
HISTORY_HEADERS = ["caption", "when", "v", "source", "state", "who"]  # caption first, narrow columns after
QUERY_INPUTS = ("text", *FILTER_ATTRIBUTES, "source", "state", "sort")  # the filter row, left to right


# -- access ----------------------------------------------------------------------------------
def access_note(runtime: Runtime) -> str:
    """What the tab says before anyone unlocks it."""
    if not admin_enabled(runtime.settings):
        return f"🔒 {READ_ONLY_NOTE}"
    return "🔒 Read-only until you unlock editing with the admin password."


def unlock(runtime: Runtime, password: str | None) -> tuple[str, str]:
    """Check a password; returns (value for the session state, message). A wrong one unlocks nothing."""
    if not admin_enabled(runtime.settings):
        return "", f"🔒 {READ_ONLY_NOTE}"
    if is_admin(runtime.settings, password):
        return password or "", "🔓 Editing unlocked for this browser session."
    return "", "❌ Wrong admin password: nothing was changed, editing stays locked."


def require_admin(runtime: Runtime, session_password: str | None) -> None:
    """Raise AccessDeniedError unless the session holds the admin password (checked on every write)."""
    check_admin(runtime.settings, session_password)


# -- browsing --------------------------------------------------------------------------------
def make_query(
    text: str | None = "",
    source: str | None = ANY,
    state: str | None = ANY,
    sort: str | None = curation.DEFAULT_SORT,
    **attributes: str | None,
) -> curation.Query:
    """The filters chosen in the UI as a curation Query (``any`` and blanks ignored); attributes by name."""

    def chosen(value: str | None) -> str | None:
        return value if value and value != ANY else None

    return curation.Query(
        text=(text or "").strip(),
        attributes={k: v for k, v in attributes.items() if chosen(v)},  # type: ignore[misc]
        source=chosen(source),
        state=chosen(state),
        sort=sort or curation.DEFAULT_SORT,
    )


def query_from_inputs(values: Sequence[Any]) -> curation.Query:
    """The filter inputs' values, in the tab's ``QUERY_INPUTS`` order, as a curation Query."""
    return make_query(**dict(zip(QUERY_INPUTS, values)))


def counts_markdown(runtime: Runtime) -> str:
    """Counts per review state, always shown above the grid."""
    stats = curation.dataset_stats(runtime.catalog)
    c = stats["review_state"]
    sources = " · ".join(f"{source} {n}" for source, n in stats["caption_source"].items()) or "none yet"
    return (
        f"**{stats['images']} images** · unreviewed **{c['unreviewed']}** · approved **{c['approved']}** · "
        f"rejected **{c['rejected']}** · failed captioning **{stats['failed_captioning']}** · "
        f"uncaptioned {stats['uncaptioned']}  \ncaptions by source: {sources}"
    )


def _label(record: ImageRecord) -> str:
    caption = record.caption or "(no caption)"
    if len(caption) > 90:
        caption = caption[:87] + "…"
    return f"{STATE_MARKS.get(record.review_state, '')} {caption}"


@dataclass
class PageView:
    """One page of the grid, ready for a gr.Gallery and a gr.CheckboxGroup."""

    gallery: list[tuple[str | Image.Image, str]]  # a cached thumbnail, or one made in memory (read-only home)
    ids: list[str]
    choices: list[tuple[str, str]]
    page: int
    pages: int
    total: int

    @property
    def info(self) -> str:
        """Where we are: page n of m, matching count."""
        return f"Page {self.page} of {self.pages} · {self.total} matching"


@phrased
def load_page(runtime: Runtime, query: curation.Query, number: int = 1, page_size: int = PAGE_SIZE) -> PageView:
    """The grid's page ``number`` for ``query``, with cached thumbnails."""
    result = curation.page(runtime.catalog, query, int(number or 1), page_size)
    gallery, choices = [], []
    for record in result.records:
        gallery.append((gallery_image(runtime.settings.thumbs_dir, record.id, record.path), _label(record)))
        choices.append((f"{record.id[:8]} {_label(record)[:40]}", record.id))
    return PageView(gallery, [r.id for r in result.records], choices, result.page, result.pages, result.total)


SELECTED_MARK = "☑ "


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
    """The grid's (thumbnail, caption) items with ☑ before the picked ones' captions."""
    picked, marked = set(chosen), []
    for (thumb, caption), image_id in zip(items or [], ids):
        text = (caption or "").removeprefix(SELECTED_MARK)
        marked.append((thumb, SELECTED_MARK + text if image_id in picked else text))
    return marked


# -- editor ----------------------------------------------------------------------------------
@dataclass
class EditorView:
    """What the editor shows for one image (or nothing selected)."""

    image_id: str = ""
    version: int = -1
    image: Image.Image | None = None
    meta: str = "_Select an image in the grid._"
    caption: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    history: list[list[Any]] = field(default_factory=list)
    message: str = ""
    conflict: str = ""


def open_image(runtime: Runtime, image_id: str | None, message: str = "") -> EditorView:
    """The editor for one image: large picture, caption, attributes, source/model/prompt, history."""
    if not image_id:
        return EditorView(message=message or "No more unreviewed images match the filters. 🎉")
    try:
        info = curation.detail(runtime.catalog, image_id)
    except NotFoundError:
        return EditorView(message=f"Image {image_id[:12]} is no longer in the collection.")
    record = info.record
    image = None
    try:
        image = load_image(Path(record.path), runtime.settings.max_image_pixels, runtime.settings.max_image_bytes).image
        image.thumbnail((DETAIL_SIDE, DETAIL_SIDE))
    except CarmatchError as exc:
        message = (message + "\n\n" if message else "") + f"⚠️ The image file cannot be opened: {as_text(exc)}"
    meta = (
        f"**{as_text(Path(record.path).name)}** · {record.width}×{record.height} · id `{record.id[:16]}`\n\n"
        f"state **{record.review_state}** · source **{record.caption_source or 'none'}** · "
        f"model {as_code(record.caption_model or '-')} · prompt {as_code(record.prompt_version or '-')} · "
        f"version {record.version}"
        + (f" · by {as_text(record.caption_author)}" if record.caption_author else "")
        + f"\n\n{as_code(record.rel_path or Path(record.path).name)}"  # never a server path: visitors read this tab
    )
    if info.failures and not record.caption:
        last = info.failures[0]
        meta += (
            f"\n\n⚠️ Captioning failed {len(info.failures)}×; last ({as_text(last['source'])}): {as_text(last['error'])}"
        )
    attrs = {key: str(record.attributes.get(key) or "") for key in ATTRIBUTE_COLUMNS}
    history = [
        [h.caption or "", short_date(h.created_at), h.version, h.source or "", h.review_state or "", h.author or ""]
        for h in info.history
    ]
    return EditorView(record.id, record.version, image, meta, record.caption or "", attrs, history, message)


def short_date(stamp: str | None) -> str:
    """An ISO timestamp as 'YYYY-MM-DD HH:MM UTC' (the catalog stores UTC; the browser shows local time)."""
    return (stamp or "").replace("T", " ")[:16] + " UTC" if stamp else ""


def _conflict_markdown(conflict: curation.CaptionConflict) -> str:
    theirs = conflict.theirs
    return (
        "### ⚠️ Not saved: someone else changed this caption\n"
        f"**Theirs** (version {theirs.version}, {theirs.caption_source or 'no source'}, "
        f"{theirs.review_state}, by {theirs.caption_author or 'unknown'}):\n\n> {theirs.caption or '(no caption)'}\n\n"
        f"**Yours** (still in the editor):\n\n> {conflict.yours_caption or '(empty)'}\n\n"
        "Press **Reload** to load their version, then re-apply your change if it is still needed."
    )


def _editor_attrs(values: Sequence[str | None]) -> dict[str, str | None]:
    return dict(zip(ATTRIBUTE_COLUMNS, values))


@phrased
def save(
    runtime: Runtime,
    session_password: str | None,
    image_id: str,
    version: int,
    caption: str,
    attributes: Sequence[str | None],
    query: curation.Query,
    review_state: str | None = None,
    advance: bool = False,
) -> EditorView:
    """Save the editor (optionally approving/rejecting), then stay or move to the next unreviewed.

    A stale version returns the editor unchanged with the conflict panel showing both versions.
    """
    require_admin(runtime, session_password)
    if not image_id:
        raise InvalidInputError("Select an image in the grid first.")
    try:
        curation.save_caption(
            runtime.catalog,
            image_id,
            caption,
            _editor_attrs(attributes),
            int(version),
            author=APP_AUTHOR,
            review_state=review_state,
        )
    except curation.CaptionConflict as conflict:
        return _stale_view(runtime, image_id, version, caption, attributes, conflict)
    done = {"approved": "Approved", "rejected": "Rejected"}.get(review_state or "", "Saved")
    return _after_action(runtime, image_id, query, advance, f"✅ {done} {image_id[:12]}.")


@phrased
def review(
    runtime: Runtime,
    session_password: str | None,
    image_id: str,
    version: int,
    state: str,
    query: curation.Query,
    advance: bool = True,
) -> EditorView:
    """Approve or reject the image as stored (no caption edit), then move to the next unreviewed."""
    require_admin(runtime, session_password)
    if not image_id:
        raise InvalidInputError("Select an image in the grid first.")
    try:
        curation.set_review(runtime.catalog, image_id, state, int(version), author=APP_AUTHOR)
    except curation.CaptionConflict as conflict:
        record = conflict.theirs
        return _stale_view(runtime, image_id, version, record.caption or "", [], conflict)
    return _after_action(runtime, image_id, query, advance, f"✅ {state.capitalize()} {image_id[:12]}.")


def skip(runtime: Runtime, image_id: str, query: curation.Query) -> EditorView:
    """Move to the next unreviewed image without changing this one."""
    return open_image(runtime, curation.next_unreviewed(runtime.catalog, query, image_id or None), "Skipped.")


@phrased
def undo(runtime: Runtime, session_password: str | None, image_id: str, version: int) -> EditorView:
    """Restore the previous caption version (recorded as a new version)."""
    require_admin(runtime, session_password)
    if not image_id:
        raise InvalidInputError("Select an image in the grid first.")
    try:
        record = curation.undo(runtime.catalog, image_id, int(version), author=APP_AUTHOR)
    except curation.CaptionConflict as conflict:
        return _stale_view(runtime, image_id, version, conflict.theirs.caption or "", [], conflict)
    return open_image(runtime, image_id, f"↩️ Restored the previous version (now version {record.version}).")


def _after_action(runtime: Runtime, image_id: str, query: curation.Query, advance: bool, message: str) -> EditorView:
    if advance:
        following = curation.next_unreviewed(runtime.catalog, query, image_id)
        return open_image(runtime, following, message)
    return open_image(runtime, image_id, message)


def _stale_view(
    runtime: Runtime,
    image_id: str,
    version: int,
    caption: str,
    attributes: Sequence[str | None],
    conflict: curation.CaptionConflict,
) -> EditorView:
    """The editor as the person left it (their text kept, their stale version kept) plus the conflict."""
    view = open_image(runtime, image_id)
    view.version = int(version)
    view.caption = caption
    if attributes:
        view.attributes = {k: str(v or "") for k, v in _editor_attrs(attributes).items()}
    view.conflict = _conflict_markdown(conflict)
    view.message = "⚠️ Not saved: the caption changed since you opened it (see both versions below)."
    return view


# -- bulk ------------------------------------------------------------------------------------
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
) -> str:
    """Run a bulk action on the checked images or on everything matching the filters; returns a report.

    Deleting, and any action on everything matching the filters, needs ``confirmed`` (the refusal gives the count).
    """
    require_admin(runtime, session_password)
    if scope == SCOPE_MATCHING:
        ids = curation.matching_ids(runtime.catalog, query)
    else:
        ids = list(selected_ids or [])
    if not ids:
        raise InvalidInputError(
            "No images selected: tick some in the grid, or choose 'everything matching the filters'."
        )
    if scope == SCOPE_MATCHING and not confirmed:
        raise InvalidInputError(
            f"This would {action} all {len(ids)} image(s) matching the filters: tick 'confirm' and run again."
        )
    catalog = runtime.catalog
    if action == "approve":
        return bulk_ops.bulk_review(catalog, ids, "approved", APP_AUTHOR, progress, overturn_rejected).summary()
    if action == "reject":
        return bulk_ops.bulk_review(catalog, ids, "rejected", APP_AUTHOR, progress).summary()
    if action == "delete":
        if not confirmed:
            raise InvalidInputError(f"Tick 'confirm' to remove {len(ids)} image(s) from the collection.")
        under = runtime.settings.uploads_dir if delete_files else None
        return bulk_ops.bulk_delete(catalog, runtime.store, ids, under, progress, runtime.settings.thumbs_dir).summary()
    if action == "caption with Claude":
        # with no client passed in, the captioner makes a bedrock-runtime client (carmatch.aws.make_client)
        return bulk_ops.caption_with_claude(catalog, runtime.settings, ids, bedrock_client, progress)
    raise InvalidInputError(f"Unknown bulk action {action!r}; use one of {', '.join(BULK_ACTIONS)}.")


def filter_choices(runtime: Runtime) -> dict[str, list[str]]:
    """Dropdown choices for the attribute filters, from the catalog."""
    return {key: [ANY, *runtime.catalog.distinct_values(key)] for key in FILTER_ATTRIBUTES}
