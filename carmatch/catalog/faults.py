"""Faults of the disk and the database file, each turned into one clear StorageError that says what to do."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from carmatch.catalog.backups import LEGACY_SUFFIX, newest_good_backup
from carmatch.errors import StorageError

BACKUP_SUFFIX = LEGACY_SUFFIX
CORRUPT_MARKERS = ("not a database", "malformed", "disk i/o error", "file is encrypted")
READ_ONLY_MARKERS = ("readonly", "read-only")


def migration_backup_path(db_path: Path, version: int) -> Path:
    """Where the copy taken before migrating ``db_path`` from schema ``version`` goes."""
    return db_path.with_name(f"{db_path.name}.schema{version}{BACKUP_SUFFIX}")


def restore_hint(db_path: Path) -> str:
    """The fix for an unreadable catalog: restore the newest good backup (named), or rebuild from the images."""
    rebuild = f"move {db_path.name} aside and rebuild the catalog from your images with `carmatch ingest`."
    newest = newest_good_backup(db_path)
    if newest is None:
        return f"No good backup was found in {db_path.parent}: {rebuild}"
    path, images = newest
    return f"The newest good backup is {path} ({images} images): run `carmatch restore {path}`, or {rebuild}"


def check_home(home: Path) -> None:
    """Refuse a CARMATCH_HOME that is a file, and create it when missing."""
    if home.exists() and not home.is_dir():
        raise StorageError(f"CARMATCH_HOME {home} is a file, not a folder: point CARMATCH_HOME at a folder.")
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_fault(exc, home) from exc


# What a home holds once a catalog has been in use: a catalog file missing its contents beside them is damage.
LIVED_IN = ("index", "runs", "milvus.db")


def check_db_path(db_path: Path) -> None:
    """Refuse a catalog path that is a folder, and an empty catalog file in a home that was in use."""
    if db_path.is_dir():
        raise StorageError(
            f"The catalog {db_path} is a folder, not a database file: move the folder aside "
            "(carmatch then starts an empty catalog) or point CARMATCH_HOME at another folder."
        )
    try:
        empty = db_path.is_file() and db_path.stat().st_size == 0
    except OSError:
        return
    used = [name for name in LIVED_IN if (db_path.parent / name).exists()]
    if empty and used:  # never re-initialised: that would start an empty collection over a real one
        raise StorageError(
            f"The catalog {db_path.name} is empty (0 bytes) although this home holds {', '.join(used)}: it is "
            f"damaged, and carmatch will not start a new one over it. {restore_hint(db_path)}"
        )


def os_fault(exc: OSError, where: Path | str | None = None) -> StorageError:
    """One line for a failed file operation: a full disk, a read-only or missing folder, a denied path."""
    place = exc.filename or where or "the carmatch home"
    if exc.errno == errno.ENOSPC:
        return StorageError(f"The disk holding {place} is full: free some space and run it again.")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StorageError(
            f"{place} is read-only: searching still works, but changes cannot be saved. "
            "Make it writable or point CARMATCH_HOME at a writable folder."
        )
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return StorageError(f"{place} is a file where carmatch needs a folder: point CARMATCH_HOME at a folder.")
    return StorageError(f"Cannot use {place}: {exc.strerror or exc}.")


def sqlite_fault(exc: sqlite3.Error, db_path: Path) -> StorageError | None:
    """One line for a database fault (corrupt, read-only, full, unopenable); None for any other error."""
    text = str(exc).lower()
    if any(marker in text for marker in CORRUPT_MARKERS):
        return StorageError(f"The catalog {db_path} is corrupt or truncated ({exc}).", hint=restore_hint(db_path))
    if any(marker in text for marker in READ_ONLY_MARKERS):
        return StorageError(
            f"The carmatch home {db_path.parent} is read-only: searching still works, but changes cannot be saved. "
            "Make it writable or point CARMATCH_HOME at a writable folder."
        )
    if "disk is full" in text:
        return StorageError(f"The disk holding {db_path} is full: free some space and run it again.")
    if "unable to open" in text:
        return StorageError(f"Cannot open the catalog {db_path}: check that its folder exists and is readable.")
    return None


def environment_fault(exc: OSError | sqlite3.Error, home: Path | None = None) -> StorageError | None:
    """A disk or database fault that escaped as a raw error, as one StorageError (None: not such a fault)."""
    if isinstance(exc, OSError):
        return os_fault(exc, home)
    return sqlite_fault(exc, (home or Path("the carmatch home")) / "carmatch.db")
