"""The one index write lock: every writer of an index folder holds it around its read-modify-write.

An upload (ingest), a bulk delete, a rebuild and a model activation each load the current index,
change it and save a new generation that CURRENT then names. Two of them interleaved could make an
index built by the old model CURRENT after an activation swapped models, or bring deleted images
back; holding this lock from the load (and the choice of model) to the swap rules that out.
Searches never take it: they read whichever generation CURRENT names.

There is one lock per index folder in a process (every IndexStore on that folder shares it), and
it is reentrant, so a writer may call another writer (a rebuild inside an activation). It guards
threads only; a lock across processes (the CLI beside the app) would be an ``fcntl.flock`` on a
file in the folder, taken in :meth:`IndexWriteLock.acquire` by the outermost holder.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType


class IndexWriteLock:
    """Reentrant lock over one index folder's writes; use as ``with store.write_lock: ...``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._lock = threading.RLock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock (again, for its holder); False when not blocking and another thread holds it."""
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        """Give back one hold of the lock."""
        self._lock.release()

    def __enter__(self) -> IndexWriteLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


_LOCKS: dict[Path, IndexWriteLock] = {}
_LOCKS_GUARD = threading.Lock()


def write_lock_for(folder: Path | str) -> IndexWriteLock:
    """The write lock of the index in ``folder``: the same object for every caller in this process."""
    key = Path(folder).expanduser().resolve()
    with _LOCKS_GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = IndexWriteLock(key)
        return lock
