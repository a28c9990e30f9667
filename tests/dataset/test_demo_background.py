"""A Space's first start: the demo import runs in the background while search answers from what is indexed."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from carmatch.dataset import demo
from carmatch.dataset.demo_background import DemoImport, autostart_wanted, demo_import_of, start_demo_import
from carmatch.runtime import Runtime
from carmatch.ui import search_actions
from tests.demo_support import image_folder


def space_env(source: Path, **more: str) -> dict[str, str]:
    return {"SPACE_ID": "someone/carmatch", "CARMATCH_DEMO_DATASET": str(source), "CARMATCH_DEMO_COUNT": "4", **more}


def test_first_start_on_a_space_imports_the_demo_while_search_answers(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "CHUNK_ROWS", 2)
    paused, go_on = threading.Event(), threading.Event()
    report_progress = DemoImport.report_progress

    def pause_after_first_chunk(job: DemoImport, done: int, total: int, message: str) -> None:
        report_progress(job, done, total, message)
        if done == 2:
            paused.set()
            go_on.wait(60)

    monkeypatch.setattr(DemoImport, "report_progress", pause_after_first_chunk)
    job = start_demo_import(runtime, space_env(image_folder(tmp_path / "cars-ds")))
    assert job is not None and demo_import_of(runtime) is job
    try:
        assert paused.wait(60)
        status, running = search_actions.demo_progress_status(runtime, was_running=False)
        assert running and "Importing the demo collection: 2 of 4 cars" in (status or "")
        assert len(runtime.search(text="a car", k=4).results) == 2  # what is indexed so far
    finally:
        go_on.set()
        assert job.wait(60)
    assert runtime.catalog.count() == 4 and not job.failed
    final, running = search_actions.demo_progress_status(runtime, was_running=True)  # once more when it ends
    assert not running and "4 images" in (final or "") and "Importing" not in (final or "")
    assert search_actions.demo_progress_status(runtime, was_running=False) == (None, False)  # then quiet
    assert not autostart_wanted(runtime, space_env(tmp_path))  # done: a restart does not import again


def test_no_demo_off_a_space_when_turned_off_or_over_ones_own_images(
    runtime: Runtime, tmp_path: Path, car_folder: Path
) -> None:
    source = tmp_path / "cars-ds"
    assert not autostart_wanted(runtime, {"CARMATCH_DEMO_DATASET": str(source)})
    assert not autostart_wanted(runtime, space_env(source, CARMATCH_DEMO="0"))
    assert autostart_wanted(runtime, space_env(source))
    runtime.ingestor().ingest_folder(car_folder)
    assert start_demo_import(runtime, space_env(source)) is None


def test_a_failed_demo_import_is_reported_without_server_paths(runtime: Runtime, tmp_path: Path) -> None:
    job = start_demo_import(runtime, space_env(tmp_path / "no-such-set"))
    assert job is not None and job.wait(60) and job.failed
    status = search_actions.status_markdown(runtime)
    assert "could not be imported" in status and str(tmp_path) not in status
