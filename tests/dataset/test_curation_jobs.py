"""Curation jobs in the background: progress readable, one run per kind, stoppable, failures reported."""

from __future__ import annotations

import threading
from collections.abc import Callable

from carmatch.dataset.curation_jobs import BackgroundJobs
from carmatch.errors import CancelledError
from carmatch.progress import Progress


def test_a_running_job_reports_progress_refuses_a_second_start_and_stops_when_asked() -> None:
    jobs = BackgroundJobs()
    reported, release = threading.Event(), threading.Event()

    def work(progress: Progress, cancelled: Callable[[], bool]) -> None:
        for done in range(1000):
            progress(done, 1000, "scoring captions")
            reported.set()
            release.wait(0.01)
            if cancelled():
                raise CancelledError(f"Stopped after {done} of 1000")

    assert jobs.start("suspects", work)
    assert reported.wait(5)
    status = jobs.status("suspects")
    assert status is not None and status.running and "scoring captions" in status.describe()
    assert not jobs.start("suspects", work)  # the first one goes on
    assert jobs.cancel("suspects")
    final = jobs.wait("suspects", 10)
    assert final is not None and not final.running and "Stopped after" in final.describe()
    assert not jobs.cancel("suspects")


def test_a_failing_job_says_why_and_can_run_again() -> None:
    jobs = BackgroundJobs()

    def broken(progress: Progress, cancelled: Callable[[], bool]) -> None:
        raise ValueError("disk on fire")

    assert jobs.start("map", broken)
    final = jobs.wait("map", 10)
    assert final is not None and final.error == "ValueError: disk on fire"
    assert jobs.start("map", lambda progress, cancelled: None)
    assert (jobs.wait("map", 10) or final).error is None
