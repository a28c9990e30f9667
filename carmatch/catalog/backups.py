"""Backups of the catalog: timestamped copies in ``<home>/backups/``, the newest N kept, checked before use.

A backup is a new file written by SQLite (``VACUUM INTO``, see :meth:`CatalogBase.backup`), never the live
file rewritten; ``check_catalog_file`` says whether a copy is whole (``quick_check``) and how many images it
holds. A restore writes the backup's pages into the live catalog through SQLite's online backup API, in one
write transaction, so a process that has the catalog open sees either the old contents or the restored ones.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from carmatch.atomic import move_aside, swap_in_copy
from carmatch.catalog.schema import MIGRATIONS
from carmatch.errors import StorageError

log = logging.getLogger(__name__)

BACKUP_FOLDER = "backups"  # <home>/backups/carmatch-20261208-013000.db
LEGACY_SUFFIX = ".bak"  # carmatch.db.bak (backups before timestamps) and carmatch.db.schemaN.bak (migrations)
STAMP_FORMAT = "%Y%m%d-%H%M%S"


def open_sqlite(target: str, uri: bool = False) -> sqlite3.Connection:
    """A connection to ``target`` shared between threads, autocommit, rows by name."""
    conn = sqlite3.connect(target, check_same_thread=False, isolation_level=None, timeout=30, uri=uri)
    conn.row_factory = sqlite3.Row
    return conn


def check_catalog_file(path: Path) -> int:
    """The image count of a catalog file that opens read-only and passes ``quick_check``; StorageError otherwise."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise StorageError(f"{path} is empty or not a file")
    try:
        conn = open_sqlite(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StorageError(f"{path} cannot be opened as a catalog: {exc}") from exc
    try:
        verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise StorageError(f"{path} is damaged ({verdict})")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version < 1:
            raise StorageError(f"{path} is not a carmatch catalog")
        if version > len(MIGRATIONS):
            raise StorageError(f"{path} was written by a newer carmatch (schema {version}); upgrade carmatch")
        return int(conn.execute("SELECT count(*) FROM images WHERE deleted_at IS NULL").fetchone()[0])
    except sqlite3.Error as exc:
        raise StorageError(f"{path} is not a readable catalog: {exc}") from exc
    finally:
        conn.close()


def backup_folder(db_path: Path) -> Path:
    """Where `carmatch backup` keeps its timestamped copies of ``db_path``."""
    return db_path.parent / BACKUP_FOLDER


def new_backup_path(db_path: Path, now: datetime | None = None) -> Path:
    """A new timestamped file name for a backup of ``db_path`` (never an existing one)."""
    stamp = (now or datetime.now(timezone.utc)).strftime(STAMP_FORMAT)
    folder = backup_folder(db_path)
    target = folder / f"{db_path.stem}-{stamp}.db"
    n = 1
    while target.exists():
        n += 1
        target = folder / f"{db_path.stem}-{stamp}-{n}.db"
    return target


def list_backups(db_path: Path) -> list[Path]:
    """Every backup of ``db_path``, newest first: the timestamped ones, then carmatch.db.bak and migration copies."""
    folder = backup_folder(db_path)
    stamped = sorted(folder.glob(f"{db_path.stem}-*.db"), key=lambda p: p.stat().st_mtime, reverse=True)
    legacy = sorted(
        db_path.parent.glob(f"{db_path.name}*{LEGACY_SUFFIX}"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    return [p for p in stamped if p.is_file()] + [p for p in legacy if p.is_file()]


def newest_good_backup(db_path: Path) -> tuple[Path, int] | None:
    """The newest backup that passes its check and the images it holds, or None when there is none."""
    for path in list_backups(db_path):
        try:
            return path, check_catalog_file(path)
        except (StorageError, OSError):
            continue
    return None


def prune_backups(db_path: Path, keep: int) -> list[Path]:
    """Remove timestamped backups beyond the newest ``keep`` (legacy and migration copies stay); the removed."""
    folder = backup_folder(db_path)
    stamped = sorted(folder.glob(f"{db_path.stem}-*.db"), key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for old in stamped[max(1, keep) :]:
        try:
            old.unlink()
            removed.append(old)
        except OSError as exc:
            log.warning("Could not remove old backup %s: %s", old, exc)
    return removed


def restore_into(backup: Path, db_path: Path) -> Path | None:
    """Replace the catalog at ``db_path`` with ``backup``'s contents; returns where a damaged catalog was moved.

    A catalog that still opens receives the backup's pages in one SQLite write transaction (others see the
    old or the new contents, never a mix); one that does not open is moved aside (``.damaged-<time>``) and a
    copy of the backup renamed into its place. The caller holds the index write lock and checked ``backup``.
    """
    try:
        check_catalog_file(db_path)
        whole = True
    except (StorageError, OSError):
        whole = False
    if whole:
        source = open_sqlite(f"{backup.resolve().as_uri()}?mode=ro", uri=True)
        target = open_sqlite(str(db_path))
        try:
            source.backup(target)  # one step: SQLite holds the write lock for the whole copy
        finally:
            source.close()
            target.close()
        return None
    stamp = datetime.now(timezone.utc).strftime(STAMP_FORMAT)
    aside = db_path.with_name(f"{db_path.name}.damaged-{stamp}")
    for journal in ("-wal", "-shm"):  # a damaged file's journal must not be replayed over the restored one
        stale = db_path.with_name(db_path.name + journal)
        if stale.exists():
            move_aside(stale, aside.with_name(aside.name + journal))
    swap_in_copy(backup, db_path, aside)  # the copy is whole on disk before the damaged file moves aside
    return aside if aside.exists() else None
