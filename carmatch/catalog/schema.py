"""The catalog's schema: tables, indexes and the numbered migrations that build them.

The schema carries a version (``PRAGMA user_version``); :class:`~carmatch.catalog.connection.CatalogBase`
runs the missing migrations on open.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

CAPTION_SOURCES = ("imported", "claude-live", "claude-batch", "human", "dataset")  # dataset: a demo class name
REVIEW_STATES = ("unreviewed", "approved", "rejected")
ATTRIBUTE_COLUMNS = ("color", "body_type", "make", "model", "viewpoint")
# The one list of filters: attributes with a dropdown in the Search and Dataset tabs (``model``,
# nearly unique per image, is filtered by typing), and every key ``--where`` / filter_ids accept.
FILTER_ATTRIBUTES = ("color", "body_type", "make", "viewpoint")
FILTER_KEYS = (*ATTRIBUTE_COLUMNS, "source", "review_state")

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
    # v3 (#27): traffic frames and the cars cropped from them; a crop is an image of its own.
    """
    CREATE TABLE frames (
        id TEXT PRIMARY KEY,
        path TEXT NOT NULL,
        root TEXT,
        rel_path TEXT,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        boxes_from TEXT NOT NULL,
        added_at TEXT NOT NULL,
        deleted_at TEXT
    );
    CREATE TABLE crops (
        image_id TEXT PRIMARY KEY,
        frame_id TEXT NOT NULL,
        x0 INTEGER NOT NULL,
        y0 INTEGER NOT NULL,
        x1 INTEGER NOT NULL,
        y1 INTEGER NOT NULL,
        score REAL NOT NULL,
        detector TEXT NOT NULL,
        label TEXT
    );
    CREATE INDEX crops_frame ON crops(frame_id);
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
