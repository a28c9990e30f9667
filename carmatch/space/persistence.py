"""Curated work that outlives the machine: catalog snapshots in CARMATCH_PERSIST_DIR, restored at start.

A Space's disk is wiped on every restart, and the folder that lasts (a Storage Bucket mounted over
NFS/FUSE) must never hold a live SQLite database in WAL mode. So the live catalog stays on local disk
(``CARMATCH_HOME``) and a :class:`Persister` thread copies it, as a consistent snapshot (SQLite's
``VACUUM INTO`` on local disk, then a copy), into ``<persist>/catalog/`` whenever it changed, at most
``CARMATCH_PERSIST_SECONDS`` after the change. Snapshots are whole files with new names (a rename on a
bucket mount may not be atomic), checked with ``quick_check`` before use; the newest good one is restored
when the local catalog is missing at start. Images, runs and exports are written straight into the
persist folder (``Settings.files_home``), and the index is rebuilt from the catalog's cached embeddings.

One process owns a persist folder at a time: ``owner.json`` holds its host, pid and a heartbeat; a second
process is refused while the owner is alive (same host) or its heartbeat is fresh (another host).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from carmatch.atomic import copy_file
from carmatch.catalog import Catalog
from carmatch.catalog.backups import check_catalog_file
from carmatch.errors import StorageError

log = logging.getLogger(__name__)

SNAPSHOT_FOLDER = "catalog"
SNAPSHOT_PREFIX = "carmatch-"
SNAPSHOT_SUFFIX = ".db"
KEEP_SNAPSHOTS = 3
OWNER_FILE = "owner.json"
LEASE_SECONDS = 30  # another host's heartbeat older than this is a machine that is gone


def snapshot_folder(persist: Path) -> Path:
    return persist / SNAPSHOT_FOLDER


def snapshots(persist: Path) -> list[Path]:
    """Complete snapshot files, newest first (names sort by time)."""
    folder = snapshot_folder(persist)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.name.startswith(SNAPSHOT_PREFIX) and p.name.endswith(SNAPSHOT_SUFFIX)]
    return sorted(found, key=lambda p: p.name, reverse=True)


def newest_good_snapshot(persist: Path) -> Path | None:
    """The newest snapshot that passes ``quick_check`` (a damaged one is logged and skipped)."""
    for path in snapshots(persist):
        try:
            check_catalog_file(path)
            return path
        except StorageError as exc:
            log.warning("Skipping a damaged catalog snapshot: %s", exc)
    return None


def snapshot_time(path: Path) -> datetime | None:
    """When a snapshot was written, from its name (``carmatch-20261207T225501.123456Z.db``)."""
    stamp = path.name[len(SNAPSHOT_PREFIX) : -len(SNAPSHOT_SUFFIX)]
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def restore_catalog(persist: Path, db_path: Path) -> Path | None:
    """Copy the newest good snapshot to ``db_path`` when there is no local catalog; the snapshot used, or None."""
    if db_path.exists():
        return None
    source = newest_good_snapshot(persist)
    if source is None:
        return None
    try:
        copy_file(source, db_path)
    except OSError as exc:
        raise StorageError(f"Cannot restore the catalog from {source.name}: {exc}") from exc
    log.info("Restored the catalog from %s", source)
    return source


def write_snapshot(catalog: Catalog, persist: Path, now: Callable[[], datetime] | None = None) -> Path:
    """A consistent copy of the live catalog as a new snapshot file in the persist folder; old ones pruned."""
    folder = snapshot_folder(persist)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = (now or (lambda: datetime.now(timezone.utc)))().strftime("%Y%m%dT%H%M%S.%fZ")
    target = folder / f"{SNAPSHOT_PREFIX}{stamp}{SNAPSHOT_SUFFIX}"
    with tempfile.TemporaryDirectory(prefix="snapshot-", dir=catalog.path.parent) as tmp:
        local = catalog.backup(Path(tmp) / "catalog.db")  # VACUUM INTO on local disk: consistent, no WAL
        try:
            copy_file(local, target)  # a hidden temp name until complete: snapshots() never lists a partial one
        except OSError as exc:
            raise StorageError(f"Cannot write a catalog snapshot to {folder}: {exc}") from exc
    for old in snapshots(persist)[KEEP_SNAPSHOTS:]:
        old.unlink(missing_ok=True)
    return target


# -- one owner per persist folder ---------------------------------------------------------------
@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    heartbeat: float  # time.time() of the last beat


def read_owner(persist: Path) -> Owner | None:
    try:
        data = json.loads((persist / OWNER_FILE).read_text(encoding="utf-8"))
        return Owner(str(data["host"]), int(data["pid"]), float(data["heartbeat"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_is_alive(owner: Owner, wall: Callable[[], float] = time.time) -> bool:
    """True while ``owner`` still works on the folder: a live pid here, or a fresh heartbeat from another host."""
    if owner.host == socket.gethostname():
        return owner.pid != os.getpid() and pid_alive(owner.pid)
    return wall() - owner.heartbeat < LEASE_SECONDS


def beat(persist: Path) -> None:
    """Claim the folder (or renew the claim) for this process."""
    persist.mkdir(parents=True, exist_ok=True)
    record = {"host": socket.gethostname(), "pid": os.getpid(), "heartbeat": time.time()}
    partial = persist / (OWNER_FILE + f".{os.getpid()}.partial")
    partial.write_text(json.dumps(record), encoding="utf-8")
    partial.replace(persist / OWNER_FILE)


def claim(persist: Path, wait_seconds: float = LEASE_SECONDS + 5, sleep: Callable[[float], None] = time.sleep) -> None:
    """Make this process the folder's owner, waiting out a departed host's lease; StorageError if one is alive."""
    deadline = time.monotonic() + wait_seconds
    while True:
        owner = read_owner(persist)
        if owner is None or not owner_is_alive(owner):
            beat(persist)
            return
        if owner.host == socket.gethostname() or time.monotonic() >= deadline:
            raise StorageError(
                f"Another carmatch (host {owner.host}, process {owner.pid}) is using the persist folder "
                f"{persist}. Two apps writing one folder would overwrite each other's work: stop the other one, "
                "or give this one its own CARMATCH_PERSIST_DIR."
            )
        sleep(1.0)  # a restarted Space: the old machine's heartbeat runs out within LEASE_SECONDS


def release(persist: Path) -> None:
    owner = read_owner(persist)
    if owner is not None and owner.host == socket.gethostname() and owner.pid == os.getpid():
        (persist / OWNER_FILE).unlink(missing_ok=True)


class Persister:
    """Snapshots the catalog into the persist folder whenever it changed, and keeps the folder claimed."""

    def __init__(self, catalog: Catalog, persist: Path, every_seconds: float):
        self.catalog = catalog
        self.persist = persist
        self.every_seconds = max(0.2, float(every_seconds))
        self._marker: tuple[int, int] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._saved = threading.Condition()  # notified after each snapshot
        self._thread: threading.Thread | None = None
        newest = snapshots(persist)
        self.last_snapshot: Path | None = newest[0] if newest else None
        self.last_error: str | None = None

    def snapshot_if_changed(self) -> Path | None:
        """Write a snapshot when the catalog changed since the last one (or none exists); the file, or None."""
        with self._lock:
            marker = self.catalog.change_marker()
            if marker == self._marker and self.last_snapshot is not None:
                return None
            path = write_snapshot(self.catalog, self.persist)
            self._marker, self.last_snapshot, self.last_error = marker, path, None
        log.debug("Catalog snapshot %s", path.name)
        with self._saved:
            self._saved.notify_all()
        return path

    def is_saved(self, marker: tuple[int, int]) -> bool:
        """True when a snapshot holds every change up to ``marker`` (a :meth:`Catalog.change_marker`)."""
        saved = self._marker
        return saved is not None and saved[0] >= marker[0] and saved[1] >= marker[1]

    def wait_saved(self, timeout: float) -> bool:
        """Block until the catalog as it is now is in a snapshot (True), or ``timeout`` seconds pass (False)."""
        target = self.catalog.change_marker()
        self.request()
        deadline = time.monotonic() + timeout
        with self._saved:
            while not self.is_saved(target):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._saved.wait(min(left, 0.5))
                self.request()
        return True

    def request(self) -> None:
        """Ask for a snapshot now (after an admin write batch) instead of at the next tick."""
        self._wake.set()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="carmatch-persist", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Write a last snapshot, stop the thread and give up the folder."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        try:
            self.snapshot_if_changed()
        except StorageError as exc:
            log.error("Last catalog snapshot failed: %s", exc)
        release(self.persist)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                beat(self.persist)
                self.snapshot_if_changed()
            except (StorageError, OSError) as exc:  # a full or unmounted bucket: say so, keep trying
                self.last_error = str(exc)
                log.error("Catalog snapshot failed (retrying): %s", exc)
            self._wake.wait(self.every_seconds)
            self._wake.clear()

    def describe(self) -> dict[str, object]:
        """For ``carmatch info``: where data lasts and when the last snapshot was written."""
        written = snapshot_time(self.last_snapshot) if self.last_snapshot else None
        return {
            "persist_dir": str(self.persist),
            "last_snapshot": written.isoformat(timespec="seconds") if written else None,
            "snapshot_error": self.last_error,
        }


def describe_persist_folder(persist: Path) -> dict[str, object]:
    """What the persist folder holds, read from disk (for a process that does not own it, e.g. the CLI)."""
    newest = snapshots(persist)
    written = snapshot_time(newest[0]) if newest else None
    owner = read_owner(persist)
    return {
        "persist_dir": str(persist),
        "last_snapshot": written.isoformat(timespec="seconds") if written else None,
        "persist_owner": f"{owner.host} process {owner.pid}" if owner and owner_is_alive(owner) else None,
    }
