"""Rows of the catalog as Python objects: an image with its caption, one version of a caption."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ImageRecord:
    """One image of the collection with its current caption."""

    id: str
    path: str
    width: int
    height: int
    added_at: str
    format: str | None = None
    size_bytes: int | None = None
    root: str | None = None
    rel_path: str | None = None
    caption: str | None = None
    caption_source: str | None = None
    caption_model: str | None = None
    prompt_version: str | None = None
    caption_at: str | None = None
    caption_author: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    review_state: str = "unreviewed"
    version: int = 0
    deleted_at: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ImageRecord:
        """Build from a row of the images table."""
        attrs = json.loads(row["attributes"]) if row["attributes"] else {}
        return cls(
            id=row["id"],
            path=row["path"],
            width=row["width"],
            height=row["height"],
            added_at=row["added_at"],
            format=row["format"],
            size_bytes=row["size_bytes"],
            root=row["root"],
            rel_path=row["rel_path"],
            caption=row["caption"],
            caption_source=row["caption_source"],
            caption_model=row["caption_model"],
            prompt_version=row["prompt_version"],
            caption_at=row["caption_at"],
            caption_author=row["caption_author"],
            attributes=attrs,
            review_state=row["review_state"],
            version=row["version"],
            deleted_at=row["deleted_at"],
        )


@dataclass
class HistoryEntry:
    """One saved version of an image's caption."""

    image_id: str
    version: int
    caption: str | None
    attributes: dict[str, Any]
    source: str | None
    model: str | None
    prompt_version: str | None
    review_state: str | None
    author: str | None
    created_at: str


@dataclass(frozen=True)
class CaptionState:
    """Where an image's caption came from: enough to decide whether to caption it (again)."""

    image_id: str
    has_caption: bool
    source: str | None
    prompt_version: str | None


def attr_value(attrs: dict[str, Any], key: str) -> str | None:
    value = attrs.get(key)
    if value is None or value == "":
        return None
    return str(value).strip().lower()
