"""Captions in the catalog: versions with history and optimistic concurrency, review states, failures, filters."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from carmatch.catalog.connection import CatalogBase
from carmatch.catalog.records import CaptionState, HistoryEntry, ImageRecord, attr_value
from carmatch.catalog.schema import ATTRIBUTE_COLUMNS, CAPTION_SOURCES, FILTER_KEYS, REVIEW_STATES, now_iso
from carmatch.errors import ConflictError, InvalidInputError, NotFoundError


class CaptionsMixin(CatalogBase):
    """Queries on captions: the caption columns of ``images``, ``caption_history``, ``caption_failures``."""

    # -- captions ---------------------------------------------------------------------------
    def set_caption(
        self,
        image_id: str,
        caption: str | None,
        source: str,
        attributes: dict[str, Any] | None = None,
        model: str | None = None,
        prompt_version: str | None = None,
        author: str | None = None,
        review_state: str | None = None,
        expected_version: int | None = None,
        overwrite_human: bool = True,
    ) -> int | None:
        """Save a new caption version (history kept); returns the new version, or None if skipped.

        ``expected_version`` enables optimistic concurrency: when the stored version differs,
        ConflictError is raised and nothing changes. With ``overwrite_human=False`` a caption
        whose current source is ``human`` is left alone (returns None).
        """
        if source not in CAPTION_SOURCES:
            raise InvalidInputError(f"Unknown caption source {source!r}; use one of {CAPTION_SOURCES}")
        if review_state is not None and review_state not in REVIEW_STATES:
            raise InvalidInputError(f"Unknown review state {review_state!r}; use one of {REVIEW_STATES}")
        with self._transaction() as conn:
            current = self._live_record(conn, image_id)
            if expected_version is not None and current.version != expected_version:
                raise ConflictError(
                    f"The caption of {image_id[:12]} was changed by someone else since you opened it "
                    f"(version {current.version}, you loaded {expected_version}).\n"
                    f"Theirs: {current.caption!r}\nYours would replace it."
                )
            if not overwrite_human and current.caption_source == "human":
                return None
            attrs = dict(attributes) if attributes is not None else dict(current.attributes)
            state = review_state or _state_after_edit(current, source)
            version = current.version + 1
            stamp = now_iso()
            conn.execute(
                "UPDATE images SET caption=?, caption_source=?, caption_model=?, prompt_version=?,"
                " caption_at=?, caption_author=?, attributes=?, attr_color=?, attr_body_type=?,"
                " attr_make=?, attr_model=?, attr_viewpoint=?, review_state=?, version=? WHERE id=?",
                (
                    caption,
                    source,
                    model,
                    prompt_version,
                    stamp,
                    author,
                    json.dumps(attrs, sort_keys=True) if attrs else None,
                    *[attr_value(attrs, key) for key in ATTRIBUTE_COLUMNS],
                    state,
                    version,
                    image_id,
                ),
            )
            self._add_history(conn, image_id, version, caption, attrs, source, model, prompt_version, state, author)
            return version

    def set_review_state(
        self, image_id: str, state: str, author: str | None = None, expected_version: int | None = None
    ) -> int:
        """Approve, reject or reset an image's caption; returns the new version."""
        if state not in REVIEW_STATES:
            raise InvalidInputError(f"Unknown review state {state!r}; use one of {REVIEW_STATES}")
        with self._transaction() as conn:
            record = self._live_record(conn, image_id)
            if expected_version is not None and record.version != expected_version:
                raise ConflictError(
                    f"{image_id[:12]} was changed by someone else since you opened it "
                    f"(version {record.version}, you loaded {expected_version})."
                )
            version = record.version + 1
            conn.execute("UPDATE images SET review_state=?, version=? WHERE id=?", (state, version, image_id))
            self._add_history(
                conn,
                image_id,
                version,
                record.caption,
                record.attributes,
                record.caption_source,
                record.caption_model,
                record.prompt_version,
                state,
                author,
            )
            return version

    @staticmethod
    def _live_record(conn: sqlite3.Connection, image_id: str) -> ImageRecord:
        row = conn.execute("SELECT * FROM images WHERE id=? AND deleted_at IS NULL", (image_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"No image with id {image_id} in the collection.")
        return ImageRecord.from_row(row)

    @staticmethod
    def _add_history(
        conn: sqlite3.Connection,
        image_id: str,
        version: int,
        caption: str | None,
        attrs: dict[str, Any],
        source: str | None,
        model: str | None,
        prompt_version: str | None,
        state: str | None,
        author: str | None,
    ) -> None:
        conn.execute(
            "INSERT INTO caption_history (image_id, version, caption, attributes, source, model,"
            " prompt_version, review_state, author, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                image_id,
                version,
                caption,
                json.dumps(attrs, sort_keys=True) if attrs else None,
                source,
                model,
                prompt_version,
                state,
                author,
                now_iso(),
            ),
        )

    def history(self, image_id: str) -> list[HistoryEntry]:
        """Every saved version of an image's caption, newest first."""
        rows = self._execute(
            "SELECT * FROM caption_history WHERE image_id=? ORDER BY version DESC, id DESC", (image_id,)
        )
        return [
            HistoryEntry(
                image_id=r["image_id"],
                version=r["version"],
                caption=r["caption"],
                attributes=json.loads(r["attributes"]) if r["attributes"] else {},
                source=r["source"],
                model=r["model"],
                prompt_version=r["prompt_version"],
                review_state=r["review_state"],
                author=r["author"],
                created_at=r["created_at"],
            )
            for r in rows
        ]

    def newest_history_id(self) -> int:
        """The id of the newest caption-history row (0 when there is none): a cheap "anything changed?" mark."""
        rows = self._execute("SELECT MAX(id) FROM caption_history")
        return int(rows[0][0] or 0)

    def attribute_changes_since(self, after: int) -> tuple[int, list[str]]:
        """(newest history row id, images whose caption, attributes or review state changed after row ``after``)."""
        rows = self._execute("SELECT id, image_id FROM caption_history WHERE id > ? ORDER BY id", (int(after),))
        newest = int(after)
        ids: dict[str, None] = {}
        for r in rows:
            newest = max(newest, int(r["id"]))
            ids[r["image_id"]] = None
        return newest, list(ids)

    def record_caption_failure(
        self,
        image_id: str,
        source: str,
        error: str,
        raw: str | None = None,
        model: str | None = None,
        prompt_version: str | None = None,
        job_id: str | None = None,
    ) -> None:
        """Store a captioning failure with the raw reply, never as a caption."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO caption_failures (image_id, source, model, prompt_version, error, raw, job_id,"
                " created_at) VALUES (?,?,?,?,?,?,?,?)",
                (image_id, source, model, prompt_version, error, raw, job_id, now_iso()),
            )

    def caption_failures(self, image_id: str | None = None) -> list[sqlite3.Row]:
        """Recorded captioning failures, newest first (for one image, or all)."""
        if image_id is None:
            return self._execute("SELECT * FROM caption_failures ORDER BY id DESC")
        return self._execute("SELECT * FROM caption_failures WHERE image_id=? ORDER BY id DESC", (image_id,))

    def import_caption(self, image_id: str, caption: str, attributes: dict[str, Any] | None = None) -> bool:
        """Store an imported caption unless a human already wrote one; True when stored."""
        return self.set_caption(image_id, caption, "imported", attributes=attributes, overwrite_human=False) is not None

    def caption_states(self) -> list[CaptionState]:
        """The caption source and prompt version of every live image, oldest first."""
        rows = self._execute(
            "SELECT id, caption, caption_source, prompt_version FROM images WHERE deleted_at IS NULL"
            " ORDER BY added_at, id"
        )
        return [CaptionState(r["id"], bool(r["caption"]), r["caption_source"], r["prompt_version"]) for r in rows]

    def filter_ids(self, where: dict[str, str] | None = None) -> set[str]:
        """Ids of live images matching every ``key=value`` filter.

        Keys: the attributes ``color``, ``body_type``, ``make``, ``model``, ``viewpoint``
        (case-insensitive), plus ``source`` (caption source, ``none`` for uncaptioned) and
        ``review_state``.
        """
        clauses, params = ["deleted_at IS NULL"], []
        for key, value in (where or {}).items():
            key = key.strip().lower()
            value = str(value).strip()
            if key in ATTRIBUTE_COLUMNS:
                clauses.append(f"attr_{key}=?")
                params.append(value.lower())
            elif key in ("source", "caption_source"):
                if value.lower() == "none":
                    clauses.append("caption_source IS NULL")
                else:
                    clauses.append("caption_source=?")
                    params.append(value.lower())
            elif key in ("review_state", "state", "review"):
                if value.lower() not in REVIEW_STATES:
                    raise InvalidInputError(f"Unknown review state {value!r}; use one of {REVIEW_STATES}")
                clauses.append("review_state=?")
                params.append(value.lower())
            else:
                known = ", ".join(FILTER_KEYS)
                raise InvalidInputError(f"Unknown filter {key!r}; filter on one of: {known}")
        rows = self._execute(f"SELECT id FROM images WHERE {' AND '.join(clauses)}", params)
        return {r[0] for r in rows}

    def distinct_values(self, attribute: str) -> list[str]:
        """Distinct values of one attribute column among live images, most common first."""
        return [value for value, _ in self.value_counts(attribute)]

    def value_counts(self, attribute: str) -> list[tuple[str, int]]:
        """(value, number of live images) for one attribute column, most common first."""
        if attribute not in ATTRIBUTE_COLUMNS:
            raise InvalidInputError(f"Unknown attribute {attribute!r}; use one of {ATTRIBUTE_COLUMNS}")
        rows = self._execute(
            f"SELECT attr_{attribute} AS v, COUNT(*) AS n FROM images WHERE deleted_at IS NULL"
            f" AND attr_{attribute} IS NOT NULL GROUP BY v ORDER BY n DESC, v"
        )
        return [(r["v"], int(r["n"])) for r in rows]

    # -- the training set (the rule itself is carmatch.dataset.training_set) -------------------
    def count_captioned(self, states: Sequence[str]) -> int:
        """How many live images have a non-empty caption in one of the review ``states``."""
        marks = ",".join("?" * len(states))
        rows = self._execute(
            "SELECT COUNT(*) FROM images WHERE deleted_at IS NULL AND caption IS NOT NULL AND TRIM(caption) != ''"
            f" AND review_state IN ({marks})",
            list(states),
        )
        return int(rows[0][0])

    def iter_captioned(self, states: Sequence[str], chunk_rows: int = 1000) -> Iterator[ImageRecord]:
        """Live images with a non-empty caption in one of ``states``, by id, read ``chunk_rows`` at a time."""
        marks = ",".join("?" * len(states))
        last = ""
        while True:
            rows = self._execute(
                "SELECT * FROM images WHERE deleted_at IS NULL AND caption IS NOT NULL AND TRIM(caption) != ''"
                f" AND review_state IN ({marks}) AND id > ? ORDER BY id LIMIT ?",
                [*states, last, chunk_rows],
            )
            if not rows:
                return
            for row in rows:
                yield ImageRecord.from_row(row)
            last = rows[-1]["id"]


def _state_after_edit(current: ImageRecord, source: str) -> str:
    """A human edit keeps the review state; a machine caption needs reviewing again."""
    return current.review_state if source == "human" else "unreviewed"
