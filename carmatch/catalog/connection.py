"""The catalog's connection: one SQLite file, one lock, migrations on open, transactions, meta values.

Images are keyed by the SHA-256 of their bytes, so the same picture ingested twice is one row.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from carmatch.catalog.backups import check_catalog_file, open_sqlite
from carmatch.catalog.faults import (
    check_db_path,
    check_home,
    migration_backup_path,
    os_fault,
    restore_hint,
    sqlite_fault,
)
from carmatch.catalog.schema import MIGRATIONS, split_sql
from carmatch.errors import InvalidInputError, StorageError

__all__ = ["CatalogBase", "check_catalog_file", "open_sqlite"]

log = logging.getLogger(__name__)


def _raise_fault(exc: sqlite3.Error, path: Path) -> NoReturn:
    """Raise the StorageError for a database fault (chained to it), or ``exc`` itself when it is not one."""
    fault = sqlite_fault(exc, path)
    if fault is None:
        raise exc
    raise fault from exc


class CatalogBase:
    """SQLite-backed catalog; safe to share between threads (one connection, one lock)."""

    def __init__(self, path: Path | str, check: bool = False):
        """Open (and migrate) the catalog at ``path``; ``check`` also runs :meth:`check_integrity` (start-ups)."""
        self.path = Path(path)
        self.read_only = False  # True when the home cannot be written: reads work, writes raise StorageError
        self._lock = threading.RLock()
        if str(path) == ":memory:":
            self._conn = open_sqlite(":memory:")
        else:
            check_home(self.path.parent)
            check_db_path(self.path)
            self._conn = self._open_file()
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        try:
            self._migrate()
            if check:
                self.check_integrity()
        except sqlite3.Error as exc:
            self._conn.close()
            _raise_fault(exc, self.path)
        except StorageError:
            self._conn.close()
            raise

    def _open_file(self) -> sqlite3.Connection:
        """Open the catalog file for writing, or read-only when its folder cannot be written."""
        try:
            conn = open_sqlite(str(self.path))
            conn.execute("PRAGMA journal_mode=WAL")  # reads the header: a corrupt file fails here
            return conn
        except sqlite3.Error as exc:
            text = str(exc).lower()
            if not self.path.is_file() or not ("readonly" in text or "unable to open" in text):
                _raise_fault(exc, self.path)
        log.warning("Catalog %s is not writable: opening it read-only", self.path)
        self.read_only = True
        try:
            conn = open_sqlite(f"{self.path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            _raise_fault(exc, self.path)
        return conn

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
            if current == len(MIGRATIONS):
                return
            if self.read_only:
                raise StorageError(
                    f"The catalog {self.path} needs upgrading (schema {current}), but its folder is read-only: "
                    "make it writable and run carmatch once."
                )
            if current > 0 and str(self.path) != ":memory:":
                self.backup(migration_backup_path(self.path, current))
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

    def backup(self, target: Path) -> Path:
        """Write a consistent copy of the catalog to ``target`` (sqlite's VACUUM INTO), replacing an older one."""
        target = Path(target)
        partial = target.with_name(target.name + ".partial")
        partial.unlink(missing_ok=True)
        try:
            with self._lock:
                self._conn.execute("VACUUM INTO ?", (str(partial),))
            partial.replace(target)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise os_fault(exc, target) from exc
        except sqlite3.Error as exc:
            partial.unlink(missing_ok=True)
            _raise_fault(exc, target)
        log.info("Backed up catalog %s to %s", self.path, target)
        return target

    def check_integrity(self) -> None:
        """Refuse a catalog whose pages fail SQLite's ``quick_check`` (the app's and every command's start-up).

        It reads every page once: about 0.1 s per 10,000 images with their cached embeddings (1 s at 100,000, a
        540 MB file; bench/catalog_check_bench.py on 2 shared cores).
        """
        if str(self.path) == ":memory:":
            return
        with self._lock:
            try:
                verdict = str(self._conn.execute("PRAGMA quick_check").fetchone()[0])
            except sqlite3.Error as exc:
                _raise_fault(exc, self.path)
        if verdict != "ok":
            raise StorageError(
                f"The catalog {self.path} is damaged (SQLite's integrity check says: {verdict.splitlines()[0]}).",
                hint=restore_hint(self.path),
            )

    def change_marker(self) -> tuple[int, int]:
        """Changes any connection committed to the file: others' (``data_version``), then this connection's own."""
        with self._lock:
            try:
                version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error as exc:
                _raise_fault(exc, self.path)
            return version, self._conn.total_changes

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Make several catalog calls one unit: all of them commit, or none (the SQL stays in the catalog)."""
        with self._transaction():
            yield

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Run statements atomically: all of them commit, or none."""
        with self._lock:
            if self._conn.in_transaction:
                yield self._conn
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _raise_fault(exc, self.path)

    def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """Run one read query and return all rows."""
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                _raise_fault(exc, self.path)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> CatalogBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """A value from the key/value meta table."""
        rows = self._execute("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0][0] if rows else default

    def set_meta(self, key: str, value: str | None) -> None:
        """Store a value in the key/value meta table."""
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?,?)", (key, value))
