"""The one index write lock: an upload or a bulk delete running while a model is activated.

Each test pauses the upload (or delete) right after it loaded the index it is about to change,
starts an activation, lets the writer go on once the activation is either waiting for the lock or
finished, and then checks what CURRENT names. Without the lock, the activation would finish while
the writer is paused, and the writer would then save an index built by the old model as CURRENT.
Events order every step; nothing sleeps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from carmatch.dataset import bulk
from carmatch.ingest.uploads import add_uploads
from carmatch.runtime import Runtime
from carmatch.stores.hnsw_store import IndexStore
from carmatch.stores.index import VectorIndex
from carmatch.stores.write_lock import IndexWriteLock, write_lock_for
from carmatch.training import registry
from tests.drawing import save_car
from tests.training_support import nudged_checkpoint

WAIT_SECONDS = 120  # only a guard against a hang; every wait below returns as soon as its event is set


class Worker(threading.Thread):
    """A named thread that keeps what its function returned or raised."""

    def __init__(self, name: str, fn: Callable[[], Any], finished: threading.Event | None = None):
        super().__init__(name=name, daemon=True)
        self.fn, self.finished = fn, finished
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread by outcome()
            self.error = exc
        finally:
            if self.finished is not None:
                self.finished.set()

    def outcome(self) -> Any:
        self.join(WAIT_SECONDS)
        assert not self.is_alive(), f"{self.name} did not finish"
        if self.error is not None:
            raise self.error
        return self.result


class WatchedLock:
    """The store's write lock, saying when the activation thread finds it held by someone else."""

    def __init__(self, lock: IndexWriteLock, activation_blocked: threading.Event):
        self.lock, self.activation_blocked = lock, activation_blocked

    def __enter__(self) -> WatchedLock:
        if not self.lock.acquire(blocking=False):
            if threading.current_thread().name == "activation":
                self.activation_blocked.set()
            self.lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()

    @contextmanager
    def holding(self, activity: str, progress: object = None) -> Iterator[WatchedLock]:
        """Hold the lock as ``with`` does (the activity name only matters to other processes)."""
        with self:
            yield self


@pytest.fixture
def indexed(runtime: Runtime, car_folder: Path) -> Runtime:
    """Six drawn cars indexed by the base model."""
    runtime.ingestor().ingest_folder(car_folder)
    return runtime


@pytest.fixture
def run_id(indexed: Runtime, tiny_model: tuple[str, str], tmp_path: Path) -> str:
    """A registered fine-tuned run: the tiny model with nudged weights (another embedding space)."""
    checkpoint = nudged_checkpoint(tiny_model, tmp_path / "runs" / "run-lock" / "best.pt")
    registry.register_model(
        indexed.catalog, "run-lock", "local", tiny_model[0], tiny_model[1], "ready", str(checkpoint)
    )
    return "run-lock"


def activate_while_paused(
    runtime: Runtime, run_id: str, writer: Worker, paused: threading.Event, go_on: threading.Event
) -> Any:
    """Start the activation once ``writer`` is paused mid-write; let the writer go on once it is blocked or done."""
    activation_blocked = threading.Event()
    runtime.store.write_lock = WatchedLock(runtime.store.write_lock, activation_blocked)  # type: ignore[assignment]
    writer.start()
    assert paused.wait(WAIT_SECONDS)
    activation = Worker("activation", lambda: registry.activate(runtime, run_id), finished=activation_blocked)
    activation.start()
    assert activation_blocked.wait(WAIT_SECONDS)  # blocked by the paused writer (or, with no lock, already done)
    go_on.set()
    writer.outcome()
    return activation.outcome()


def current_index(runtime: Runtime) -> VectorIndex:
    """The index CURRENT names, read from disk by a fresh store."""
    return IndexStore(runtime.settings.index_dir).load()


def pause_after_load(
    runtime: Runtime, thread_name: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[threading.Event, threading.Event]:
    """Make ``thread_name`` stop right after it loads the current index, until released; (paused, go_on)."""
    paused, go_on = threading.Event(), threading.Event()
    load = runtime.store.load

    def load_then_pause(*args: Any, **kwargs: Any) -> VectorIndex:
        index = load(*args, **kwargs)
        if threading.current_thread().name == thread_name and not paused.is_set():
            paused.set()  # the writer holds the old model's index and has changed nothing yet
            assert go_on.wait(WAIT_SECONDS)
        return index

    monkeypatch.setattr(runtime.store, "load", load_then_pause)
    return paused, go_on


def test_an_upload_and_an_activation_leave_the_new_models_index_holding_the_uploads(
    indexed: Runtime, run_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_key = indexed.embedder.model_key
    files = [save_car(tmp_path / "new" / f"new_{n}.png", "blue", "van", seed=100 + n) for n in range(2)]
    paused, go_on = pause_after_load(indexed, "upload", monkeypatch)
    upload = Worker("upload", lambda: add_uploads(indexed, files))
    result = activate_while_paused(indexed, run_id, upload, paused, go_on)

    assert upload.result.ingest.added == 2 and result.model_key != base_key
    index = current_index(indexed)
    assert index.manifest.model_key == result.model_key == indexed.embedder.model_key
    assert sorted(index.ids) == sorted(indexed.catalog.ids()) and len(index) == 8
    assert indexed.active_model().run_id == run_id
    assert len(indexed.search(text="a blue van", k=8).results) == 8


def test_a_bulk_delete_and_an_activation_leave_the_new_models_index_without_the_deleted(
    indexed: Runtime, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = indexed.catalog.ids()[:2]
    paused, go_on = pause_after_load(indexed, "delete", monkeypatch)
    delete = Worker("delete", lambda: bulk.bulk_delete(indexed.catalog, indexed.store, gone))
    result = activate_while_paused(indexed, run_id, delete, paused, go_on)

    assert delete.result.changed == 2
    index = current_index(indexed)
    assert index.manifest.model_key == result.model_key == indexed.embedder.model_key
    assert sorted(index.ids) == sorted(indexed.catalog.ids()) and not set(gone) & set(index.ids) and len(index) == 4


def test_every_store_on_one_folder_shares_one_reentrant_lock(tmp_path: Path) -> None:
    first, second = IndexStore(tmp_path / "index"), IndexStore(tmp_path / "other" / ".." / "index")
    assert first.write_lock is second.write_lock is write_lock_for(tmp_path / "index")
    assert IndexStore(tmp_path / "elsewhere").write_lock is not first.write_lock
    with first.write_lock, second.write_lock:  # a writer may call another writer
        taken = Worker("other", lambda: first.write_lock.acquire(blocking=False))
        taken.start()
        assert taken.outcome() is False  # another thread cannot take it meanwhile
    assert first.write_lock.acquire(blocking=False)
    first.write_lock.release()


HOLDER_SNIPPET = """
import sys, time
from pathlib import Path
from filelock import FileLock
lock_path, holder_path, held, go = sys.argv[1:]
with FileLock(lock_path):
    Path(holder_path).write_text("rebuild (process 1234)")
    Path(held).touch()
    deadline = time.monotonic() + 120
    while not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
"""


def test_a_writer_waiting_for_another_process_reports_it_as_progress(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    lock = IndexWriteLock(tmp_path / "index")
    held, go = tmp_path / "held", tmp_path / "go"
    args = [str(lock.lock_path), str(lock.holder_path), str(held), str(go)]
    other = subprocess.Popen([sys.executable, "-c", HOLDER_SNIPPET, *args])
    messages: list[str] = []
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while not held.exists():  # poll until the other process holds the lock
            assert other.poll() is None and time.monotonic() < deadline, "the other process never took the lock"
            time.sleep(0.02)
        assert not lock.acquire(blocking=False)  # a non-blocking writer gives up at once

        def upload() -> str:
            with lock.holding("upload", lambda done, total, message: messages.append(message)):
                return lock.holder_path.read_text()

        writer = Worker("upload", upload)
        writer.start()
        while not messages:
            assert writer.is_alive() and time.monotonic() < deadline, "the writer never said it waits"
            time.sleep(0.02)
        assert writer.is_alive()  # still waiting: the other process holds the lock
    finally:
        go.touch()
        other.wait(WAIT_SECONDS)
    assert writer.outcome().startswith("upload (process ")  # then it went on and wrote
    assert messages == ["waiting for the running rebuild (process 1234)…"]


def test_a_lock_whose_holder_note_cannot_be_written_is_refused_and_not_kept(tmp_path: Path) -> None:
    from filelock import FileLock

    from carmatch.errors import StorageError

    lock = IndexWriteLock(tmp_path / "index")
    lock.holder_path.mkdir(parents=True)  # the note cannot be written (here: a folder in its place)
    with pytest.raises(StorageError, match="Cannot take the index write lock"):
        lock.acquire()
    other = FileLock(str(lock.lock_path), thread_local=False)
    other.acquire(timeout=0)  # the file lock was given back: another writer takes it at once
    other.release()
    lock.holder_path.rmdir()
    with lock.holding("rebuild"):  # and this lock works once the folder is fixed
        assert lock.holder_path.read_text().startswith("rebuild")
