"""A Space's first start: the demo import in a background thread, and its progress for the Search tab.

On a Space (``SPACE_ID`` set) whose collection is empty, or whose demo import was cut short by a
restart, :func:`start_demo_import` imports the demo collection in a thread; searches meanwhile answer
from what is already indexed. ``CARMATCH_DEMO=0`` turns it off; ``CARMATCH_DEMO_DATASET`` and
``CARMATCH_DEMO_COUNT`` choose the data set and how many images (defaults: see carmatch.dataset.demo).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping

from carmatch.dataset.demo import DEMO_COUNT, DEMO_DATASET, DEMO_DONE_KEY, DemoReport, demo_folder, import_demo
from carmatch.errors import CarmatchError
from carmatch.runtime import Runtime
from carmatch.space.storage import on_space

log = logging.getLogger(__name__)

_imports: weakref.WeakKeyDictionary[Runtime, DemoImport] = weakref.WeakKeyDictionary()


class DemoImport:
    """The demo import running in a background thread, with its progress."""

    def __init__(self, runtime: Runtime, source: str = DEMO_DATASET, n: int = DEMO_COUNT):
        self.runtime = runtime
        self.source = source
        self.done = 0
        self.total = n
        self.report: DemoReport | None = None
        self.failed = False
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="carmatch-demo-import", daemon=True)

    def start(self) -> DemoImport:
        """Start the thread; returns self."""
        self._thread.start()
        return self

    def report_progress(self, done: int, total: int, message: str) -> None:
        self.done, self.total = done, total

    def _run(self) -> None:
        log.info("Importing the demo collection (%d images from %s) in the background", self.total, self.source)
        try:
            self.report = import_demo(
                self.runtime, self.source, n=self.total, progress=self.report_progress, cancel=self._cancel
            )
            log.info("%s", self.report.summary())
        except CarmatchError as exc:
            self.failed = True
            log.error("The demo collection could not be imported: %s", exc)

    def running(self) -> bool:
        """True while the import runs."""
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the import to end; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def cancel(self) -> None:
        """Ask the import to stop after the current image (what is ingested stays; a restart resumes)."""
        self._cancel.set()

    def status_line(self) -> str | None:
        """A line for the Search tab's status while importing or after a failure; None once done."""
        if self.running():
            return (
                f"Importing the demo collection: {self.done} of {self.total} cars so far. "
                "Search answers from the cars already indexed."
            )
        if self.failed:
            return "The demo collection could not be imported; the server log says why."
        return None


def autostart_wanted(runtime: Runtime, env: Mapping[str, str] | None = None) -> bool:
    """True on a Space with the demo on, when the collection is empty or a demo import was cut short."""
    if not on_space(env) or not runtime.settings.demo:
        return False
    if runtime.catalog.get_meta(DEMO_DONE_KEY):
        return False
    return runtime.catalog.count() == 0 or demo_folder(runtime).is_dir()


def start_demo_import(runtime: Runtime, env: Mapping[str, str] | None = None) -> DemoImport | None:
    """Start the background demo import when :func:`autostart_wanted`; the running import, or None."""
    if not autostart_wanted(runtime, env):
        return None
    settings = runtime.settings
    job = DemoImport(runtime, settings.demo_dataset or DEMO_DATASET, settings.demo_count or DEMO_COUNT)
    _imports[runtime] = job
    return job.start()


def demo_import_of(runtime: Runtime) -> DemoImport | None:
    """The background demo import started for ``runtime``, if any."""
    return _imports.get(runtime)
