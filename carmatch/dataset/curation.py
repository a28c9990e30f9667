"""Curation: page through the collection with filters, edit and review captions one at a time.

Paging is the catalog's (:mod:`carmatch.catalog.browse`): SQL over indexed columns with
LIMIT/OFFSET, so the Dataset tab stays fast at 50,000 images. Edits go through the catalog's
versioned ``set_caption``/``set_review_state``: each save is a history row, and a save against a
stale version raises :class:`CaptionConflict`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from carmatch.bounds import check_number
from carmatch.catalog import ATTRIBUTE_COLUMNS, CAPTION_SOURCES, Catalog, HistoryEntry, ImageRecord
from carmatch.catalog.browse import DEFAULT_SORT, FAILED, SORTS, SOURCE_FILTERS, SOURCE_NONE, STATE_FILTERS
from carmatch.catalog.browse import BrowseQuery as Query  # what the grid shows is the catalog's browse query
from carmatch.dataset.import_reading import plain_text
from carmatch.errors import ConflictError, InvalidInputError

log = logging.getLogger(__name__)

__all__ = [  # the grid's filters and sorts are the catalog's, re-exported for the Dataset tab
    "DEFAULT_SORT",
    "FAILED",
    "SORTS",
    "SOURCE_FILTERS",
    "SOURCE_NONE",
    "STATE_FILTERS",
    "CaptionConflict",
    "Detail",
    "Page",
    "Query",
    "detail",
    "matching_ids",
    "merge_attributes",
    "next_unreviewed",
    "page",
    "save_caption",
    "set_review",
    "state_counts",
    "undo",
    "undo_target",
]

DEFAULT_PAGE_SIZE = 48
MAX_PAGE_SIZE = 500
MAX_CAPTION_CHARS = 10_000
DEFAULT_AUTHOR = "admin"
_UNDO_MARK = re.compile(r"\(undo to v(\d+)\)$")


# -- browsing --------------------------------------------------------------------------------
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
    page_size = check_number(page_size, "page_size", 1, MAX_PAGE_SIZE, integer=True, label="Page size")
    wanted = check_number(number, "page", None, None, integer=True, label="The page number")  # then clamped
    total = catalog.count_matching(query)
    pages = max(1, -(-total // page_size))
    number = min(max(1, wanted), pages)
    return Page(catalog.page_records(query, page_size, (number - 1) * page_size), total, number, page_size)


def matching_ids(catalog: Catalog, query: Query) -> list[str]:
    """Ids of every image matching ``query``, in its order (ids only, for bulk actions)."""
    return catalog.matching_ids(query)


def state_counts(catalog: Catalog) -> dict[str, int]:
    """Live images per review state, plus ``failed`` (captioning failed, no caption), uncaptioned, total."""
    return catalog.state_counts()


def dataset_stats(catalog: Catalog) -> dict[str, Any]:
    """The curation state the Dataset tab shows and ``dataset stats`` prints: one owner for both."""
    counts = catalog.state_counts()
    return {
        "images": counts["total"],
        "review_state": {state: counts[state] for state in ("unreviewed", "approved", "rejected")},
        "caption_source": catalog.source_counts(),
        "failed_captioning": counts["failed"],
        "uncaptioned": counts["uncaptioned"],
    }


def next_unreviewed(catalog: Catalog, query: Query, after_id: str | None = None) -> str | None:
    """The next unreviewed image after ``after_id`` in the query's order (wrapping), or None."""
    unreviewed = Query(query.text, dict(query.attributes), query.source, "unreviewed", query.sort)
    return catalog.next_matching(unreviewed, after_id)


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
    text = " ".join(plain_text(caption or "").split())  # no NUL or other control characters stored
    if not text:
        raise InvalidInputError(
            field="caption",
            value=text,
            label="The caption",
            reason="is empty: write one, or reject the image to keep it out of training",
        )
    if len(text) > MAX_CAPTION_CHARS:
        raise InvalidInputError(
            field="caption",
            value=len(text),
            limit=MAX_CAPTION_CHARS,
            label="The caption",
            reason=f"is {len(text)} characters; keep it under {MAX_CAPTION_CHARS}",
        )
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
