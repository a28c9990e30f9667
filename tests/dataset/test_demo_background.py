"""A Space's first start: the demo import runs in the background while search answers from what is indexed."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from carmatch.config import Settings, load_settings
from carmatch.dataset import demo
from carmatch.dataset.demo_background import DemoImport, autostart_wanted, demo_import_of, start_demo_import
from carmatch.embedding.embedder import Embedder
from carmatch.runtime import Runtime
from carmatch.ui import search_actions, server_status
from tests.demo_support import image_folder

ON_A_SPACE = {"SPACE_ID": "someone/carmatch"}


def demo_runtime(settings: Settings, embedder: Embedder, source: Path, **more: object) -> Runtime:
    """A Runtime whose settings point the start-up demo import at ``source`` (4 images)."""
    return Runtime(settings.with_overrides(demo_dataset=str(source), demo_count=4, **more), embedder=embedder)


def test_first_start_on_a_space_imports_the_demo_while_search_answers(
    settings: Settings, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = demo_runtime(settings, embedder, image_folder(tmp_path / "cars-ds"))
    monkeypatch.setattr(demo, "CHUNK_ROWS", 2)
    paused, go_on = threading.Event(), threading.Event()
    report_progress = DemoImport.report_progress

    def pause_after_first_chunk(job: DemoImport, done: int, total: int, message: str) -> None:
        report_progress(job, done, total, message)
        if done == 2:
            paused.set()
            go_on.wait(60)

    monkeypatch.setattr(DemoImport, "report_progress", pause_after_first_chunk)
    job = start_demo_import(runtime, ON_A_SPACE)
    assert job is not None and demo_import_of(runtime) is job
    try:
        assert paused.wait(60)
        status, running = search_actions.demo_progress_status(runtime, was_running=False)
        assert running and "The collection is being prepared: 2 of 4 cars so far" in (status or "")
        assert len(runtime.search(text="a car", k=4).results) == 2  # what is indexed so far
    finally:
        go_on.set()
        assert job.wait(60)
    assert runtime.catalog.count() == 4 and not job.failed
    final, running = search_actions.demo_progress_status(runtime, was_running=True)  # once more when it ends
    assert not running and "4 cars" in (final or "") and "prepared" not in (final or "")
    assert search_actions.demo_progress_status(runtime, was_running=False) == (None, False)  # then quiet
    assert not autostart_wanted(runtime, ON_A_SPACE)  # done: a restart does not import again
    runtime.close()


def test_no_demo_off_a_space_when_turned_off_or_over_ones_own_images(
    settings: Settings, embedder: Embedder, tmp_path: Path, car_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "cars-ds"
    runtime = demo_runtime(settings, embedder, source)
    assert not autostart_wanted(runtime, {})  # not on a Space
    monkeypatch.setenv("CARMATCH_DEMO", "0")
    assert not load_settings().demo  # CARMATCH_DEMO=0 turns it off ...
    assert not autostart_wanted(demo_runtime(settings, embedder, source, demo=False), ON_A_SPACE)  # ... on a Space
    assert autostart_wanted(runtime, ON_A_SPACE)
    runtime.ingestor().ingest_folder(car_folder)
    assert start_demo_import(runtime, ON_A_SPACE) is None
    runtime.close()


def test_a_failed_demo_import_is_reported_without_server_paths(
    settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    runtime = demo_runtime(settings, embedder, tmp_path / "no-such-set")
    job = start_demo_import(runtime, ON_A_SPACE)
    assert job is not None and job.wait(60) and job.failed
    status = search_actions.status_markdown(runtime)
    assert "could not be imported" not in status and str(tmp_path) not in status  # visitors: no admin notice
    assert "could not be imported" in server_status.admin_status(runtime)
    runtime.close()
