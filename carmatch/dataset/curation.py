"""Curation: page through the collection with filters, edit and review captions one at a time.

Every query is SQL over indexed columns with LIMIT/OFFSET, so the Dataset tab stays fast at
50,000 images. Edits go through the catalog's versioned ``set_caption``/``set_review_state``:
each save is a history row, and a save against a stale version raises :class:`CaptionConflict`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from carmatch.catalog import ATTRIBUTE_COLUMNS, CAPTION_SOURCES, REVIEW_STATES, Catalog, HistoryEntry, ImageRecord
from carmatch.errors import ConflictError, InvalidInputError

log = logging.getLogger(__name__)


FAILED = "failed"  # review-state filter: captioning failed and the image has no caption
STATE_FILTERS = (*REVIEW_STATES, FAILED)
SOURCE_NONE = "none"
SOURCE_FILTERS = (*CAPTION_SOURCES, SOURCE_NONE)
# name -> (ORDER BY clause, key expression and direction for "the next one after this")
SORTS: dict[str, tuple[str, str, str]] = {
    "newest": ("added_at DESC, id DESC", "added_at", "DESC"),
    "oldest": ("added_at ASC, id ASC", "added_at", "ASC"),
    "recently captioned": ("caption_at DESC, id DESC", "COALESCE(caption_at, '')", "DESC"),
    "file name": ("path ASC, id ASC", "path", "ASC"),
}
DEFAULT_SORT = "newest"
DEFAULT_PAGE_SIZE = 48
MAX_PAGE_SIZE = 500
MAX_CAPTION_CHARS = 10_000
DEFAULT_AUTHOR = "admin"
_UNDO_MARK = re.compile(r"\(undo to v(\d+)\)$")


# -- browsing --------------------------------------------------------------------------------
@dataclass
class Query:
    """What the grid shows: caption words, attribute values, caption source, review state, order."""

    text: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    state: str | None = None
    sort: str = DEFAULT_SORT

    def where(self) -> tuple[str, list[Any]]:
        """The SQL WHERE clause (over ``images``) and its parameters."""
        clauses, params = ["deleted_at IS NULL"], []
        for word in self.text.split():
            clauses.append("caption LIKE ? ESCAPE '\\'")
            params.append("%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        for key, value in self.attributes.items():
            if key not in ATTRIBUTE_COLUMNS:
                raise InvalidInputError(f"Unknown attribute {key!r}; use one of {', '.join(ATTRIBUTE_COLUMNS)}")
            if value and value.strip():
                clauses.append(f"attr_{key}=?")
                params.append(value.strip().lower())
        if self.source:
            source = self.source.strip().lower()
            if source == SOURCE_NONE:
                clauses.append("caption_source IS NULL")
            elif source in CAPTION_SOURCES:
                clauses.append("caption_source=?")
                params.append(source)
            else:
                raise InvalidInputError(f"Unknown caption source {self.source!r}; use one of {SOURCE_FILTERS}")
        if self.state:
            state = self.state.strip().lower()
            if state == FAILED:
                clauses.append(
                    "caption IS NULL AND EXISTS (SELECT 1 FROM caption_failures f WHERE f.image_id=images.id)"
                )
            elif state in REVIEW_STATES:
                clauses.append("review_state=?")
                params.append(state)
            else:
                raise InvalidInputError(f"Unknown review state {self.state!r}; use one of {STATE_FILTERS}")
        return " AND ".join(clauses), params

    def order_by(self) -> str:
        """The SQL ORDER BY clause of the chosen sort."""
        if self.sort not in SORTS:
            raise InvalidInputError(f"Unknown sort {self.sort!r}; use one of {', '.join(SORTS)}")
        return SORTS[self.sort][0]


@dataclass
class Page:
    """One page of the grid plus the number of matching images."""

    records: list[ImageRecord]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        """How many pages the matching images fill (at least 1)."""
        return max(1, -(-self.total // self.page_size))


def page(catalog: Catalog, query: Query, number: int = 1, page_size: int = DEFAULT_PAGE_SIZE) -> Page:
    """The ``number``-th page (1-based, clamped) of images matching ``query``."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInputError(f"Page size must be between 1 and {MAX_PAGE_SIZE} (got {page_size}).")
    where, params = query.where()
    order = query.order_by()
    total = int(catalog.execute(f"SELECT COUNT(*) FROM images WHERE {where}", params)[0][0])
    pages = max(1, -(-total // page_size))
    number = min(max(1, int(number)), pages)
    # ids first through the covering index, then the rows: deep pages stay cheap
    rows = catalog.execute(
        f"SELECT * FROM images WHERE id IN (SELECT id FROM images WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?)"
        f" ORDER BY {order}",
        [*params, page_size, (number - 1) * page_size],
    )
    return Page([ImageRecord.from_row(r) for r in rows], total, number, page_size)


def matching_ids(catalog: Catalog, query: Query) -> list[str]:
    """Ids of every image matching ``query``, in its order (ids only, for bulk actions)."""
    where, params = query.where()
    return [r[0] for r in catalog.execute(f"SELECT id FROM images WHERE {where} ORDER BY {query.order_by()}", params)]


def state_counts(catalog: Catalog) -> dict[str, int]:
    """Live images per review state, plus ``failed`` (captioning failed, no caption), uncaptioned, total."""
    counts = {state: 0 for state in STATE_FILTERS}
    for row in catalog.execute(
        "SELECT review_state, COUNT(*) FROM images WHERE deleted_at IS NULL GROUP BY review_state"
    ):
        counts[row[0]] = int(row[1])
    counts[FAILED] = int(
        catalog.execute(
            "SELECT COUNT(*) FROM images WHERE deleted_at IS NULL AND caption IS NULL"
            " AND EXISTS (SELECT 1 FROM caption_failures f WHERE f.image_id=images.id)"
        )[0][0]
    )
    counts["uncaptioned"] = int(
        catalog.execute("SELECT COUNT(*) FROM images WHERE deleted_at IS NULL AND caption IS NULL")[0][0]
    )
    counts["total"] = sum(counts[s] for s in REVIEW_STATES)
    return counts


def next_unreviewed(catalog: Catalog, query: Query, after_id: str | None = None) -> str | None:
    """The next unreviewed image after ``after_id`` in the query's order (wrapping), or None."""
    base = Query(query.text, dict(query.attributes), query.source, "unreviewed", query.sort)
    where, params = base.where()
    order = base.order_by()
    _, key, direction = SORTS[base.sort]
    if after_id:
        current = catalog.execute(f"SELECT {key} AS k, id FROM images WHERE id=?", (after_id,))
        if current:
            op = "<" if direction == "DESC" else ">"
            rows = catalog.execute(
                f"SELECT id FROM images WHERE {where} AND ({key} {op} ? OR ({key} = ? AND id {op} ?))"
                f" ORDER BY {order} LIMIT 1",
                [*params, current[0]["k"], current[0]["k"], after_id],
            )
            if rows:
                return str(rows[0][0])
    rows = catalog.execute(
        f"SELECT id FROM images WHERE {where} AND id != ? ORDER BY {order} LIMIT 1", [*params, after_id or ""]
    )
    return str(rows[0][0]) if rows else None


# -- one image -------------------------------------------------------------------------------
@dataclass
class Detail:
    """An image with its caption history and captioning failures, for the editor."""

    record: ImageRecord
    history: list[HistoryEntry]
    failures: list[dict[str, Any]]


def detail(catalog: Catalog, image_id: str) -> Detail:
    """Everything the editor shows about one image."""
    record = catalog.get(image_id)
    failures = [
        {k: row[k] for k in ("source", "model", "prompt_version", "error", "created_at")}
        for row in catalog.caption_failures(image_id)[:20]
    ]
    return Detail(record, catalog.history(image_id), failures)


class CaptionConflict(ConflictError):
    """A save lost the race: the stored version is newer than the one the editor loaded."""

    def __init__(self, message: str, theirs: ImageRecord, yours_caption: str | None, yours_attributes: dict[str, Any]):
        super().__init__(message)
        self.theirs = theirs
        self.yours_caption = yours_caption
        self.yours_attributes = yours_attributes


def _conflict(
    catalog: Catalog, image_id: str, expected: int, caption: str | None, attrs: dict[str, Any]
) -> CaptionConflict:
    theirs = catalog.get(image_id)
    message = (
        f"Not saved: someone else changed this caption since you opened it (now version {theirs.version}, "
        f"you loaded version {expected}).\n"
        f"Theirs ({theirs.caption_source or 'no source'}, {theirs.review_state}): {theirs.caption!r}\n"
        f"Yours: {caption!r}\n"
        "Reload the image to see their version, then apply your change again if it is still needed."
    )
    return CaptionConflict(message, theirs, caption, attrs)


def merge_attributes(current: Mapping[str, Any], edited: Mapping[str, str | None]) -> dict[str, Any]:
    """``current`` with the edited attribute fields applied (a blank field removes the attribute)."""
    merged = dict(current)
    for key, value in edited.items():
        text = (value or "").strip()
        if text:
            merged[key] = text.lower() if key in ATTRIBUTE_COLUMNS else text
        else:
            merged.pop(key, None)
    return merged


def save_caption(
    catalog: Catalog,
    image_id: str,
    caption: str,
    attributes: Mapping[str, str | None],
    expected_version: int,
    author: str = DEFAULT_AUTHOR,
    review_state: str | None = None,
) -> ImageRecord:
    """Save a person's caption and attributes (a new history version); CaptionConflict when stale.

    When neither caption nor attributes changed, only the review state is recorded, so an
    approved Claude caption keeps its source.
    """
    text = " ".join((caption or "").split())
    if not text:
        raise InvalidInputError("The caption is empty: write one, or reject the image to keep it out of training.")
    if len(text) > MAX_CAPTION_CHARS:
        raise InvalidInputError(f"The caption is {len(text)} characters; keep it under {MAX_CAPTION_CHARS}.")
    current = catalog.get(image_id)
    attrs = merge_attributes(current.attributes, attributes)
    if current.version != expected_version:
        raise _conflict(catalog, image_id, expected_version, text, attrs)
    try:
        if text == current.caption and attrs == current.attributes:
            if review_state is not None and review_state != current.review_state:
                catalog.set_review_state(image_id, review_state, author=author, expected_version=expected_version)
        else:
            catalog.set_caption(
                image_id,
                text,
                "human",
                attributes=attrs,
                author=author,
                review_state=review_state,
                expected_version=expected_version,
            )
    except ConflictError as exc:
        raise _conflict(catalog, image_id, expected_version, text, attrs) from exc
    return catalog.get(image_id)


def set_review(
    catalog: Catalog, image_id: str, state: str, expected_version: int | None = None, author: str = DEFAULT_AUTHOR
) -> ImageRecord:
    """Approve, reject or reset one image (approving needs a caption); CaptionConflict when stale."""
    record = catalog.get(image_id)
    if state == "approved" and not record.caption:
        raise InvalidInputError("This image has no caption to approve: write one first (or reject it).")
    if expected_version is not None and record.version != expected_version:
        raise _conflict(catalog, image_id, expected_version, record.caption, record.attributes)
    if record.review_state != state:
        try:
            catalog.set_review_state(image_id, state, author=author, expected_version=expected_version)
        except ConflictError as exc:
            raise _conflict(catalog, image_id, expected_version or 0, record.caption, record.attributes) from exc
    return catalog.get(image_id)


def undo_target(history: Sequence[HistoryEntry]) -> HistoryEntry | None:
    """The version an undo restores: the one before the current (skipping what earlier undos undid)."""
    if len(history) < 2:
        return None
    newest = history[0]
    floor = newest.version
    mark = _UNDO_MARK.search(newest.author or "")
    if mark:  # the newest version re-applied an older one: step back from that one
        floor = int(mark.group(1))
    older = [entry for entry in history if entry.version < floor]
    return older[0] if older else None


def undo(catalog: Catalog, image_id: str, expected_version: int, author: str = DEFAULT_AUTHOR) -> ImageRecord:
    """Restore the previous caption version as a new version (history keeps everything)."""
    record = catalog.get(image_id)
    if record.version != expected_version:
        raise _conflict(catalog, image_id, expected_version, record.caption, record.attributes)
    target = undo_target(catalog.history(image_id))
    if target is None:
        raise InvalidInputError("Nothing to undo: this image has no earlier caption version.")
    who = f"{author} (undo to v{target.version})"
    try:
        if (
            target.caption == record.caption
            and target.attributes == record.attributes
            and (target.source == record.caption_source)
        ):
            catalog.set_review_state(
                image_id, target.review_state or "unreviewed", author=who, expected_version=expected_version
            )
        elif target.source in CAPTION_SOURCES and target.caption:
            catalog.set_caption(
                image_id,
                target.caption,
                target.source,
                attributes=target.attributes,
                model=target.model,
                prompt_version=target.prompt_version,
                author=who,
                review_state=target.review_state or "unreviewed",
                expected_version=expected_version,
            )
        else:
            raise InvalidInputError(
                f"Version {target.version} had no caption, so it cannot be restored; reject the image instead."
            )
    except CaptionConflict:
        raise
    except ConflictError as exc:
        raise _conflict(catalog, image_id, expected_version, record.caption, record.attributes) from exc
    return catalog.get(image_id)
