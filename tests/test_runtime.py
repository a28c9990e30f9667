"""The runtime loads the model once, remembers a failure, and reports the index falling behind."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from carmatch.config import Settings
from carmatch.embedding.embedder import Embedder
from carmatch.errors import ModelLoadError
from carmatch.runtime import Runtime


def test_a_failed_load_is_tried_once_logged_once_and_raised_at_once_after(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def no_weights(name: str, *args: object, **kwargs: object) -> Embedder:
        calls.append(name)
        raise ModelLoadError("no weights here")

    monkeypatch.setattr("carmatch.embedding.loading.load_clip", no_weights)
    runtime = Runtime(settings)
    loader = runtime.start_loading()
    assert loader is not None
    loader.join()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            with pytest.raises(ModelLoadError, match="no weights here"):
                runtime.search(text="red car")
            info = runtime.info()
            assert info["problems"][0] == "no weights here" and info["model_state"] == "failed"
            assert info["device"] is None
    assert len(calls) == 1 and runtime.start_loading() is None
    assert len([r for r in caplog.records if "no weights" in r.getMessage()]) == 1  # logged once, at load
    runtime.close()


def test_a_background_load_failure_is_logged_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(
        "carmatch.embedding.loading.load_clip", lambda *a, **k: (_ for _ in ()).throw(ModelLoadError("gone"))
    )
    runtime = Runtime(settings)
    with caplog.at_level(logging.WARNING):
        loader = runtime.start_loading()  # the app: no caller sees a background failure, so it is logged
        assert loader is not None
        loader.join()
        for _ in range(3):
            runtime.info()
            runtime.start_loading()
    assert [r.getMessage() for r in caplog.records] == ["The CLIP model could not be loaded: gone"]
    runtime.close()


def test_info_says_when_the_index_is_behind_the_catalog_and_how_to_catch_up(runtime: Runtime, car_folder: Path) -> None:
    runtime.ingestor().ingest_folder(car_folder)
    runtime.catalog.add_image("f" * 64, str(car_folder / "late.jpg"), 10, 10)  # recorded, never embedded (Ctrl-C)
    info = runtime.info()
    assert (info["images"], info["index_size"]) == (7, 6)
    assert any(
        p.startswith("The index holds 6 of the 7 images") and "carmatch index rebuild" in p for p in info["problems"]
    )


def test_info_counts_missing_files_when_asked(runtime: Runtime, car_folder: Path) -> None:
    runtime.ingestor().ingest_folder(car_folder)
    (car_folder / "red_sedan.jpg").unlink()
    info = runtime.info(check_files=True)
    assert info["missing_files"] == 1
    assert any(p.startswith("1 image file(s) are not where the catalog says") for p in info["problems"])
