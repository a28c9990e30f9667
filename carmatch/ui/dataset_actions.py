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

from carmatch.access import READ_ONLY_NOTE, admin_enabled, check_admin
from carmatch.catalog import ATTRIBUTE_COLUMNS, ImageRecord
from carmatch.catalog.schema import FILTER_ATTRIBUTES, REVIEW_STATES
from carmatch.dataset import curation
from carmatch.errors import AccessDeniedError, CarmatchError, InvalidInputError, NotFoundError
from carmatch.images import load_image
from carmatch.runtime import Runtime
from carmatch.ui.dataset_history import EMPTY as EMPTY_HISTORY
from carmatch.ui.dataset_history import history_html
from carmatch.ui.phrasing import as_code, as_text, phrased
from carmatch.ui.thumbnails import gallery_image

log = logging.getLogger(__name__)


ANY = "any"
APP_AUTHOR = "app"
PAGE_SIZE = 48
DETAIL_SIDE = 1024
LABEL_CHARS = 300  # a tile's caption (shown whole on hover or focus); the editor shows all of it
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
    try:
        check_admin(runtime.settings, password)  # the one rate-limited check: a wait is said as such
    except AccessDeniedError as exc:
        return "", f"❌ {exc} Editing stays locked."
    return password or "", "🔓 Editing unlocked for this browser session."


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


def tile_label(state: str, caption: str | None, picked: bool = False) -> str:
    """A grid tile's label: ``[picked · ]state · caption``; the page's script draws the words before the
    caption as badges (plain words without it, never emoji)."""
    text = caption or "(no caption)"
    if len(text) > LABEL_CHARS:
        text = text[: LABEL_CHARS - 1] + "…"
    return f"{'picked · ' if picked else ''}{state} · {text}"


def _label(record: ImageRecord) -> str:
    return tile_label(record.review_state, record.caption)


@dataclass
class PageView:
    """One page of the grid, ready for a gr.Gallery and a gr.CheckboxGroup."""

    gallery: list[tuple[str | Image.Image, str]]  # a cached thumbnail, or one made in memory (read-only home)
    ids: list[str]
    choices: list[tuple[str, str]]
    page: int
    pages: int
    total: int
    versions: dict[str, int] = field(default_factory=dict)  # what the reviewer sees; bulk actions check them
    filtered: bool = False  # any filter set (an empty page then offers Clear filters)

    @property
    def info(self) -> str:
        """Where we are: page n of m, matching count."""
        return f"Page {self.page} of {self.pages} · {self.total} matching"

    @property
    def empty_note(self) -> str:
        """What an empty grid says instead of showing nothing ('' when the page has images)."""
        if self.total:
            return ""
        if self.filtered:
            return "**No images match these filters.** Clear them to see the whole collection."
        return "**The collection is empty.** Add images under *Add images* (admin), or run `carmatch ingest FOLDER`."


@phrased
def load_page(runtime: Runtime, query: curation.Query, number: int = 1, page_size: int = PAGE_SIZE) -> PageView:
    """The grid's page ``number`` for ``query``, with cached thumbnails."""
    result = curation.page(runtime.catalog, query, int(number or 1), page_size)
    gallery, choices = [], []
    for record in result.records:
        gallery.append((gallery_image(runtime.settings.thumbs_dir, record.id, record.path), _label(record)))
        choices.append((f"{record.id[:8]} {_label(record)[:40]}", record.id))
    versions = {r.id: r.version for r in result.records}
    filtered = query != curation.Query(sort=query.sort)
    return PageView(
        gallery, [r.id for r in result.records], choices, result.page, result.pages, result.total, versions, filtered
    )


def grid_place(
    runtime: Runtime, query: curation.Query, image_id: str, page_size: int = PAGE_SIZE
) -> tuple[int, int] | None:
    """Where the grid shows ``image_id`` under ``query``: (page number from 1, index on that page); None when
    it does not match."""
    ids = curation.matching_ids(runtime.catalog, query)
    if image_id not in ids:
        return None
    page, slot = divmod(ids.index(image_id), page_size)
    return page + 1, slot


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
    history: str = EMPTY_HISTORY  # HTML: one line per version with a word diff (ui/dataset_history.py)
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
    state = record.review_state if record.review_state in REVIEW_STATES else "unreviewed"
    meta = (
        f'<span class="cm-badge cm-state-{state}">{state}</span> '
        f"{as_code(record.rel_path or Path(record.path).name)} · "  # never a server path: visitors read this tab
        f"{record.width}×{record.height} · id `{record.id[:12]}` · version {record.version}  \n"
        f"source **{record.caption_source or 'none'}** · "
        f"model {as_code(record.caption_model or '-')} · prompt {as_code(record.prompt_version or '-')}"
        + (f" · by {as_text(record.caption_author)}" if record.caption_author else "")
    )
    if info.failures and not record.caption:
        last = info.failures[0]
        meta += (
            f"\n\n⚠️ Captioning failed {len(info.failures)}×; last ({as_text(last['source'])}): {as_text(last['error'])}"
        )
    attrs = {key: str(record.attributes.get(key) or "") for key in ATTRIBUTE_COLUMNS}
    history = history_html(info.history)
    return EditorView(record.id, record.version, image, meta, record.caption or "", attrs, history, message)


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


def filter_choices(runtime: Runtime) -> dict[str, list[str]]:
    """Dropdown choices for the attribute filters, from the catalog."""
    return {key: [ANY, *runtime.catalog.distinct_values(key)] for key in FILTER_ATTRIBUTES}
