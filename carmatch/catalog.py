"""The catalog: one SQLite file holding images, captions and their history, embeddings, jobs, models.

Images are keyed by the SHA-256 of their bytes, so the same picture ingested twice is one row.
The schema carries a version (``PRAGMA user_version``) and migrations run on open.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConflictError, InvalidInputError, NotFoundError

log = logging.getLogger(__name__)

CAPTION_SOURCES = ("imported", "claude-live", "claude-batch", "human")
REVIEW_STATES = ("unreviewed", "approved", "rejected")
ATTRIBUTE_COLUMNS = ("color", "body_type", "make", "model", "viewpoint")

MIGRATIONS: list[str] = [
    # v1: the whole first schema.
    """
    CREATE TABLE images (
        id TEXT PRIMARY KEY,
        path TEXT NOT NULL,
        root TEXT,
        rel_path TEXT,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        format TEXT,
        size_bytes INTEGER,
        added_at TEXT NOT NULL,
        caption TEXT,
        caption_source TEXT,
        caption_model TEXT,
        prompt_version TEXT,
        caption_at TEXT,
        caption_author TEXT,
        attributes TEXT,
        attr_color TEXT,
        attr_body_type TEXT,
        attr_make TEXT,
        attr_model TEXT,
        attr_viewpoint TEXT,
        review_state TEXT NOT NULL DEFAULT 'unreviewed',
        version INTEGER NOT NULL DEFAULT 0,
        deleted_at TEXT
    );
    CREATE INDEX images_added ON images(added_at);
    CREATE INDEX images_review ON images(review_state, deleted_at);
    CREATE INDEX images_source ON images(caption_source);
    CREATE INDEX images_color ON images(attr_color);
    CREATE INDEX images_body ON images(attr_body_type);
    CREATE INDEX images_make ON images(attr_make);
    CREATE INDEX images_viewpoint ON images(attr_viewpoint);
    CREATE INDEX images_path ON images(path);
    CREATE TABLE files (
        path TEXT PRIMARY KEY,
        size_bytes INTEGER NOT NULL,
        mtime REAL NOT NULL,
        image_id TEXT NOT NULL
    );
    CREATE TABLE caption_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        image_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        caption TEXT,
        attributes TEXT,
        source TEXT,
        model TEXT,
        prompt_version TEXT,
        review_state TEXT,
        author TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX caption_history_image ON caption_history(image_id, version);
    CREATE TABLE caption_failures (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        image_id TEXT NOT NULL,
        source TEXT NOT NULL,
        model TEXT,
        prompt_version TEXT,
        error TEXT NOT NULL,
        raw TEXT,
        job_id TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX caption_failures_image ON caption_failures(image_id);
    CREATE TABLE embeddings (
        image_id TEXT NOT NULL,
        model_key TEXT NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (image_id, model_key)
    );
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT,
        arn TEXT,
        status TEXT NOT NULL,
        message TEXT,
        input_uri TEXT,
        output_uri TEXT,
        params TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        collected_at TEXT
    );
    CREATE TABLE job_records (
        job_id TEXT NOT NULL,
        record_id TEXT NOT NULL,
        image_id TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        PRIMARY KEY (job_id, record_id)
    );
    CREATE TABLE models (
        id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        kind TEXT NOT NULL,
        base_model TEXT NOT NULL,
        base_pretrained TEXT NOT NULL,
        checkpoint TEXT,
        config TEXT,
        metrics TEXT,
        status TEXT NOT NULL
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT
    );
    """,
    # v2: indexes for paging the Dataset tab at 50,000 images and matching imported files.
    """
    CREATE INDEX images_live_added ON images(deleted_at, added_at, id);
    CREATE INDEX images_live_caption_at ON images(deleted_at, caption_at, id);
    CREATE INDEX images_live_state ON images(deleted_at, review_state, added_at, id);
    CREATE INDEX images_rel_path ON images(rel_path);
    CREATE INDEX images_live_path ON images(deleted_at, path, id);
    """,
]


def split_sql(script: str) -> list[str]:
    """Split a SQL script into complete statements (semicolons in strings and triggers included)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"Incomplete SQL statement in migration: {pending.strip()[:80]}")
    return statements


def now_iso() -> str:
    """The current UTC time as an ISO-8601 string."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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


class Catalog:
    """SQLite-backed catalog; safe to share between threads (one connection, one lock)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA foreign_keys=ON")
        if str(path) != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        """The schema version this file is at."""
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        with self._lock:
            current = self.schema_version
            if current > len(MIGRATIONS):
                raise InvalidInputError(
                    f"{self.path} was written by a newer carmatch (schema {current}); upgrade carmatch."
                )
            for version in range(current, len(MIGRATIONS)):
                log.info("Migrating catalog %s to schema %d", self.path, version + 1)
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in split_sql(MIGRATIONS[version]):
                        self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version={version + 1}")
                    self._conn.execute("COMMIT")
                except sqlite3.Error:
                    self._conn.execute("ROLLBACK")
                    raise

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run statements atomically: all of them commit, or none."""
        with self._lock:
            if self._conn.in_transaction:
                yield self._conn
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """Run one read query and return all rows."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- images -----------------------------------------------------------------------------
    def add_image(
        self,
        image_id: str,
        path: str,
        width: int,
        height: int,
        fmt: str | None = None,
        size_bytes: int | None = None,
        root: str | None = None,
        rel_path: str | None = None,
    ) -> bool:
        """Record an image; returns False when its hash is already in the catalog."""
        with self.transaction() as conn:
            row = conn.execute("SELECT id FROM images WHERE id=?", (image_id,)).fetchone()
            if row is not None:
                return False
            conn.execute(
                "INSERT INTO images (id, path, root, rel_path, width, height, format, size_bytes, added_at)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (image_id, path, root, rel_path, width, height, fmt, size_bytes, now_iso()),
            )
            return True

    def get(self, image_id: str, include_deleted: bool = False) -> ImageRecord:
        """One image by id; NotFoundError when unknown (or deleted)."""
        row = self.execute("SELECT * FROM images WHERE id=?", (image_id,))
        if not row or (row[0]["deleted_at"] and not include_deleted):
            raise NotFoundError(f"No image with id {image_id} in the collection.")
        return ImageRecord.from_row(row[0])

    def get_many(self, image_ids: Sequence[str]) -> dict[str, ImageRecord]:
        """Images by id (missing and deleted ones are left out)."""
        out: dict[str, ImageRecord] = {}
        ids = list(image_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.execute(
                f"SELECT * FROM images WHERE deleted_at IS NULL AND id IN ({marks})", chunk
            ):
                out[row["id"]] = ImageRecord.from_row(row)
        return out

    def resolve_ids(self, ids: Iterable[str]) -> list[str]:
        """Full ids of live images from ids or unique id prefixes (as the CLI prints them), in order."""
        out: list[str] = []
        for raw in ids:
            key = raw.strip().lower()
            if not key:
                continue
            if not re.fullmatch(r"[0-9a-f]{1,64}", key):
                raise NotFoundError(f"No image with id {raw!r} in the collection (ids are hexadecimal).")
            rows = self.execute(
                "SELECT id FROM images WHERE deleted_at IS NULL AND id >= ? AND id < ? ORDER BY id LIMIT 2",
                (key, key + "g"),
            )
            if not rows:
                raise NotFoundError(f"No image with id {raw!r} in the collection.")
            if len(rows) > 1 and rows[0][0] != key:
                raise InvalidInputError(f"Image id prefix {raw!r} matches several images; give more characters.")
            if rows[0][0] not in out:
                out.append(str(rows[0][0]))
        return out

    def find_by_path(self, path: str) -> ImageRecord | None:
        """The live image last ingested from ``path``, if any."""
        rows = self.execute("SELECT * FROM images WHERE path=? AND deleted_at IS NULL LIMIT 1", (path,))
        return ImageRecord.from_row(rows[0]) if rows else None

    def ids(self, include_deleted: bool = False) -> list[str]:
        """Every image id, oldest first."""
        where = "" if include_deleted else "WHERE deleted_at IS NULL"
        return [r[0] for r in self.execute(f"SELECT id FROM images {where} ORDER BY added_at, id")]

    def count(self) -> int:
        """Number of live images."""
        return int(self.execute("SELECT COUNT(*) FROM images WHERE deleted_at IS NULL")[0][0])

    def is_deleted(self, image_id: str) -> bool:
        """True when the image was deleted from the collection."""
        rows = self.execute("SELECT deleted_at FROM images WHERE id=?", (image_id,))
        return bool(rows and rows[0][0])

    def update_path(self, image_id: str, path: str, root: str | None, rel_path: str | None) -> None:
        """Remember where an already-known image now lives."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE images SET path=?, root=?, rel_path=? WHERE id=?", (path, root, rel_path, image_id)
            )

    def delete_images(self, image_ids: Iterable[str]) -> int:
        """Remove images from the collection (soft delete: history is kept); returns how many."""
        stamp = now_iso()
        changed = 0
        with self.transaction() as conn:
            for image_id in image_ids:
                cur = conn.execute(
                    "UPDATE images SET deleted_at=? WHERE id=? AND deleted_at IS NULL", (stamp, image_id)
                )
                changed += cur.rowcount
        return changed

    def restore_images(self, image_ids: Iterable[str]) -> int:
        """Bring deleted images back into the collection; returns how many."""
        changed = 0
        with self.transaction() as conn:
            for image_id in image_ids:
                changed += conn.execute(
                    "UPDATE images SET deleted_at=NULL WHERE id=? AND deleted_at IS NOT NULL", (image_id,)
                ).rowcount
        return changed

    # -- file stat cache (fast re-ingest) ----------------------------------------------------
    def lookup_file(self, path: str, size_bytes: int, mtime: float) -> str | None:
        """The image id of a file seen before with the same size and mtime, else None."""
        rows = self.execute("SELECT size_bytes, mtime, image_id FROM files WHERE path=?", (path,))
        if rows and rows[0]["size_bytes"] == size_bytes and abs(rows[0]["mtime"] - mtime) < 1e-6:
            return str(rows[0]["image_id"])
        return None

    def remember_file(self, path: str, size_bytes: int, mtime: float, image_id: str) -> None:
        """Record a file's size and mtime with the image id its bytes hash to."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO files (path, size_bytes, mtime, image_id) VALUES (?,?,?,?)",
                (path, size_bytes, mtime, image_id),
            )

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
        with self.transaction() as conn:
            row = conn.execute("SELECT * FROM images WHERE id=? AND deleted_at IS NULL", (image_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"No image with id {image_id} in the collection.")
            current = ImageRecord.from_row(row)
            if expected_version is not None and current.version != expected_version:
                raise ConflictError(
                    f"The caption of {image_id[:12]} was changed by someone else since you opened it "
                    f"(version {current.version}, you loaded {expected_version}).\n"
                    f"Theirs: {current.caption!r}\nYours would replace it."
                )
            if not overwrite_human and current.caption_source == "human":
                return None
            attrs = dict(attributes) if attributes is not None else dict(current.attributes)
            state = review_state if review_state is not None else (
                current.review_state if source == "human" else "unreviewed"
            )
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
                    *[_attr_value(attrs, key) for key in ATTRIBUTE_COLUMNS],
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
        with self.transaction() as conn:
            record = self.get(image_id)
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
        rows = self.execute(
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
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO caption_failures (image_id, source, model, prompt_version, error, raw, job_id,"
                " created_at) VALUES (?,?,?,?,?,?,?,?)",
                (image_id, source, model, prompt_version, error, raw, job_id, now_iso()),
            )

    def caption_failures(self, image_id: str | None = None) -> list[sqlite3.Row]:
        """Recorded captioning failures, newest first (for one image, or all)."""
        if image_id is None:
            return self.execute("SELECT * FROM caption_failures ORDER BY id DESC")
        return self.execute("SELECT * FROM caption_failures WHERE image_id=? ORDER BY id DESC", (image_id,))

    def import_caption(self, image_id: str, caption: str, attributes: dict[str, Any] | None = None) -> bool:
        """Store an imported caption unless a human already wrote one; True when stored."""
        return self.set_caption(image_id, caption, "imported", attributes=attributes, overwrite_human=False) is not None

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
                known = ", ".join((*ATTRIBUTE_COLUMNS, "source", "review_state"))
                raise InvalidInputError(f"Unknown filter {key!r}; filter on one of: {known}")
        rows = self.execute(f"SELECT id FROM images WHERE {' AND '.join(clauses)}", params)
        return {r[0] for r in rows}

    def distinct_values(self, attribute: str) -> list[str]:
        """Distinct values of one attribute column among live images, most common first."""
        if attribute not in ATTRIBUTE_COLUMNS:
            raise InvalidInputError(f"Unknown attribute {attribute!r}; use one of {ATTRIBUTE_COLUMNS}")
        rows = self.execute(
            f"SELECT attr_{attribute} AS v, COUNT(*) AS n FROM images WHERE deleted_at IS NULL"
            f" AND attr_{attribute} IS NOT NULL GROUP BY v ORDER BY n DESC, v"
        )
        return [r["v"] for r in rows]

    # -- embeddings -------------------------------------------------------------------------
    def put_embeddings(self, model_key: str, image_ids: Sequence[str], vectors: np.ndarray) -> None:
        """Cache embeddings of images for one model (atomically, all or none)."""
        if len(image_ids) != len(vectors):
            raise ValueError("image_ids and vectors differ in length")
        rows = [(i, model_key, np.asarray(v, dtype=np.float32).tobytes()) for i, v in zip(image_ids, vectors)]
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings (image_id, model_key, vector) VALUES (?,?,?)", rows
            )

    def get_embeddings(self, model_key: str, image_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached embeddings for those images that have one under ``model_key``."""
        out: dict[str, np.ndarray] = {}
        ids = list(image_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.execute(
                f"SELECT image_id, vector FROM embeddings WHERE model_key=? AND image_id IN ({marks})",
                [model_key, *chunk],
            ):
                out[row[0]] = np.frombuffer(row[1], dtype=np.float32)
        return out

    def embedded_ids(self, model_key: str) -> set[str]:
        """Ids of live images with a cached embedding under ``model_key``."""
        rows = self.execute(
            "SELECT e.image_id FROM embeddings e JOIN images i ON i.id=e.image_id"
            " WHERE e.model_key=? AND i.deleted_at IS NULL",
            (model_key,),
        )
        return {r[0] for r in rows}

    # -- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """A value from the key/value meta table."""
        rows = self.execute("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0][0] if rows else default

    def set_meta(self, key: str, value: str | None) -> None:
        """Store a value in the key/value meta table."""
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?,?)", (key, value))


def _attr_value(attrs: dict[str, Any], key: str) -> str | None:
    value = attrs.get(key)
    if value is None or value == "":
        return None
    return str(value).strip().lower()
