"""The one index write lock: every writer of an index folder holds it around its read-modify-write.

An upload (ingest), a bulk delete, a rebuild and a model activation each load the current index,
change it and save a new generation that CURRENT then names. Two of them interleaved could make an
index built by the old model CURRENT after an activation swapped models, or bring deleted images
back; holding this lock from the load (and the choice of model) to the swap rules that out.
Searches never take it: they read whichever generation CURRENT names, so a read-only home still
searches, while a writer there is refused with the reason ("… is read-only: searching still works").

There is one lock per index folder in a process (every IndexStore on that folder shares it), and
it is reentrant, so a writer may call another writer (a rebuild inside an activation). The
outermost holder also takes a file lock (``filelock``) beside the folder, in the carmatch home, so
the CLI and the app never write at once either; a writer that must wait for another process logs
"waiting for the running rebuild…" (and tells its progress callback), then goes on once it is free.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from carmatch.catalog.faults import os_fault
from carmatch.errors import StorageError
from carmatch.progress import Progress, no_progress

log = logging.getLogger(__name__)

DEFAULT_ACTIVITY = "index update"  # what a holder is doing when it does not say
READ_ONLY_ERRNOS = (errno.EACCES, errno.EROFS, errno.EPERM)  # the lock file cannot be created or opened for writing


class IndexWriteLock:
    """Reentrant lock over one index folder's writes; use as ``with store.write_lock: ...``.

    ``with store.write_lock.holding("rebuild", progress): ...`` also names the work (shown to a
    writer of another process that waits for it) and where to report a wait.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self._lock = threading.RLock()
        self._depth = 0  # holds by the owning thread; the file lock is taken at 1 and given back at 0
        self.lock_path = folder.parent / f".{folder.name}.write-lock"
        self.holder_path = folder.parent / f".{folder.name}.write-holder"  # what the holder is doing
        self._file = FileLock(str(self.lock_path), thread_local=False)
        self._activity = DEFAULT_ACTIVITY
        self._progress: Progress = no_progress

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock (again, for its holder); False when not blocking and another writer holds it."""
        if not self._lock.acquire(blocking, timeout):
            return False
        if self._depth == 0:
            try:
                taken = self._take_file(blocking, timeout)
            except BaseException:
                self._lock.release()
                raise
            if not taken:
                self._lock.release()
                return False
        self._depth += 1
        return True

    def _take_file(self, blocking: bool, timeout: float) -> bool:
        """Take the cross-process file lock, saying whom it waits for when another process holds it."""
        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._file.acquire(timeout=0)
            except Timeout:
                if not blocking:
                    return False
                message = f"waiting for the running {self._holder()}…"
                log.warning("%s", message[:1].upper() + message[1:])
                self._progress(0, 1, message)
                try:
                    self._file.acquire(timeout=timeout)
                except Timeout:
                    return False
            try:
                self.holder_path.write_text(f"{self._activity} (process {os.getpid()})")
            except OSError:
                self._file.release()  # a lock file that opens but a folder that cannot be written: not held
                raise
        except OSError as exc:
            if exc.errno in READ_ONLY_ERRNOS:  # a read-only home: say so (and that searching still works)
                raise os_fault(OSError(exc.errno, exc.strerror), self.lock_path.parent) from exc
            raise StorageError(f"Cannot take the index write lock {self.lock_path}: {exc}") from exc
        return True

    def _holder(self) -> str:
        """What the process holding the file lock said it is doing."""
        try:
            return self.holder_path.read_text().strip() or DEFAULT_ACTIVITY
        except OSError:
            return DEFAULT_ACTIVITY

    def release(self) -> None:
        """Give back one hold of the lock."""
        self._depth -= 1
        if self._depth == 0:
            self._file.release()
        self._lock.release()

    @contextmanager
    def holding(self, activity: str, progress: Progress = no_progress) -> Iterator[IndexWriteLock]:
        """Hold the lock for ``activity`` ("rebuild", "ingest"…), reporting a wait to ``progress``."""
        with self._lock:  # the outermost holder's name and callback are the ones used
            outer = self._depth == 0
            if outer:
                self._activity, self._progress = activity, progress
            try:
                with self:
                    yield self
            finally:
                if outer:
                    self._activity, self._progress = DEFAULT_ACTIVITY, no_progress

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
