"""Curation work in the background: one thread per kind of job, its progress readable, stoppable.

The app starts scoring, a duplicate scan or a map projection here and returns at once; the page
polls :meth:`BackgroundJobs.status` for the progress line, and the result lands in the curation cache
(:mod:`carmatch.dataset.curation_cache`) where the panel reads it. A second start of a running kind
is refused (the first one goes on); :meth:`BackgroundJobs.cancel` asks the job to stop at its next
chunk, and what it had finished (the caption vectors encoded so far) is kept for the next run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from carmatch.errors import CarmatchError
from carmatch.progress import Progress

log = logging.getLogger(__name__)

Work = Callable[[Progress, Callable[[], bool]], Any]  # work(progress, cancelled) -> result


@dataclass(frozen=True)
class JobStatus:
    """Where one kind of job stands: its last progress report, and how it ended (when it has)."""

    kind: str
    running: bool
    done: int = 0
    total: int = 0
    message: str = "starting"
    error: str | None = None
    started_at: float = 0.0
    finished_at: float | None = None

    def describe(self) -> str:
        """One line for the page: ``scoring captions: 1,200 / 5,000 (24 %)``, or how it ended."""
        if self.error:
            return f"⚠️ Stopped: {self.error}"
        if not self.running:
            return f"Finished in {max(0.0, (self.finished_at or 0) - self.started_at):.0f} s."
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        return f"Running in the background — {self.message}: {self.done:,} / {self.total:,}{share}"


class BackgroundJobs:
    """At most one running job per kind, each in its own daemon thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status: dict[str, JobStatus] = {}
        self._stop: dict[str, threading.Event] = {}

    def start(self, kind: str, work: Work) -> bool:
        """Run ``work`` in the background; False (nothing started) when ``kind`` is running already."""
        with self._lock:
            current = self._status.get(kind)
            if current is not None and current.running:
                return False
            self._status[kind] = JobStatus(kind, running=True, started_at=time.time())
            stop = self._stop[kind] = threading.Event()
        thread = threading.Thread(target=self._run, args=(kind, work, stop), name=f"curation-{kind}", daemon=True)
        thread.start()
        return True

    def _run(self, kind: str, work: Work, stop: threading.Event) -> None:
        def progress(done: int, total: int, message: str) -> None:
            with self._lock:
                self._status[kind] = replace(self._status[kind], done=done, total=total, message=message)

        error = None
        try:
            work(progress, stop.is_set)
        except CarmatchError as exc:
            error = str(exc)
        except Exception as exc:  # a background thread has no caller: any failure is reported on the page
            log.exception("Curation job %s failed", kind)
            error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._status[kind] = replace(self._status[kind], running=False, error=error, finished_at=time.time())

    def status(self, kind: str) -> JobStatus | None:
        """The latest status of ``kind`` (None when it never ran in this process)."""
        with self._lock:
            return self._status.get(kind)

    def cancel(self, kind: str) -> bool:
        """Ask a running job to stop at its next chunk; False when none runs."""
        with self._lock:
            running = self._status.get(kind)
            if running is None or not running.running:
                return False
            self._stop[kind].set()
            return True

    def wait(self, kind: str, timeout_s: float = 60.0) -> JobStatus | None:
        """Block until ``kind`` is no longer running (for the CLI and tests); its final status."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.status(kind)
            if status is None or not status.running:
                return status
            time.sleep(0.05)
        return self.status(kind)
