"""Model registry: list, activate (rebuild beside the live index, atomic swap), failures leave search serving."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from carmatch.errors import BusyError, CancelledError, InvalidInputError, NotFoundError
from carmatch.runtime import Runtime
from carmatch.training import registry
from tests.training_support import nudged_checkpoint


@pytest.fixture
def indexed(runtime: Runtime, car_folder: Path) -> Runtime:
    """A runtime with six drawn cars ingested and indexed by the base model."""
    runtime.ingestor().ingest_folder(car_folder)
    return runtime


@pytest.fixture
def run_id(indexed: Runtime, tiny_model: tuple[str, str], tmp_path: Path) -> str:
    """A registered 'fine-tuned' run: the tiny model with nudged weights (a different embedding space)."""
    checkpoint = nudged_checkpoint(tiny_model, tmp_path / "runs" / "run-test" / "best.pt")
    registry.register_model(
        indexed.catalog,
        "run-test",
        "local",
        tiny_model[0],
        tiny_model[1],
        "ready",
        checkpoint=str(checkpoint),
        metrics={"test_after": {"t2i_r5": 0.9}},
    )
    return "run-test"


def _serving(runtime: Runtime) -> tuple[str | None, str, str | None]:
    """Which run is active, which model built the index answering searches, and its generation."""
    response = runtime.search(text="a red car", k=3)
    assert len(response.results) == 3
    return runtime.active_model().run_id, runtime.index().manifest.model_key, runtime.store.current_generation()


def test_model_list_shows_base_and_runs_with_the_active_flag(indexed: Runtime, run_id: str) -> None:
    rows = registry.model_table(indexed)
    assert [(r["id"], r["active"]) for r in rows] == [("base", True), (run_id, False)]
    assert rows[1]["metrics"]["test_after"]["t2i_r5"] == 0.9
    registry.activate(indexed, run_id)
    assert [(r["id"], r["active"]) for r in registry.model_table(indexed)] == [("base", False), (run_id, True)]


def test_activate_rebuilds_the_index_with_the_run_and_base_switches_back(indexed: Runtime, run_id: str) -> None:
    base_key = indexed.embedder.model_key
    old_generation = indexed.store.current_generation()
    result = registry.activate(indexed, run_id)
    assert result.rebuilt and result.indexed == 6 and result.model_key != base_key
    active, key, generation = _serving(indexed)
    assert (active, key) == (run_id, result.model_key) and generation != old_generation
    assert indexed.active_model().spec.pretrained.endswith("best.pt")

    encoded: list[int] = []
    back = registry.activate(indexed, "base", lambda done, total, message: encoded.append(total))
    assert back.model_key == base_key and _serving(indexed)[:2] == (None, base_key)
    assert encoded == []  # the base model's embeddings were cached: nothing re-encoded
    again = registry.activate(indexed, "base")
    assert not again.rebuilt


def test_searches_are_answered_from_the_old_index_during_a_rebuild(indexed: Runtime, run_id: str) -> None:
    base_key = indexed.embedder.model_key
    seen: list[tuple[str | None, str, str | None]] = []
    registry.activate(indexed, run_id, lambda done, total, message: seen.append(_serving(indexed)))
    assert seen and all(key == base_key and active is None for active, key, _ in seen)
    assert _serving(indexed)[0] == run_id


def test_cancelled_rebuild_leaves_search_answering_from_the_old_index(indexed: Runtime, run_id: str) -> None:
    before = _serving(indexed)
    cancel = threading.Event()
    with pytest.raises(CancelledError, match="previous index is still serving"):
        registry.activate(indexed, run_id, lambda done, total, message: cancel.set(), cancel)
    assert _serving(indexed) == before
    assert indexed.active_model().run_id is None


def test_failed_activation_changes_nothing(indexed: Runtime, run_id: str) -> None:
    before = _serving(indexed)
    Path(registry.get_model(indexed.catalog, run_id).checkpoint or "").unlink()
    with pytest.raises(NotFoundError, match="checkpoint of run run-test is missing"):
        registry.activate(indexed, run_id)
    with pytest.raises(NotFoundError, match="No model run 'nope'.*run-test"):
        registry.activate(indexed, "nope")
    assert _serving(indexed) == before


def test_activating_a_model_whose_index_is_missing_rebuilds_it(indexed: Runtime, run_id: str) -> None:
    shutil.rmtree(indexed.settings.index_dir)
    result = registry.activate(indexed, run_id)
    assert result.rebuilt and _serving(indexed)[:2] == (run_id, result.model_key)
    shutil.rmtree(indexed.settings.index_dir)
    assert registry.activate(indexed, run_id).rebuilt  # the active model itself, index gone: rebuilt, no crash
    assert _serving(indexed)[0] == run_id


def test_runs_that_cannot_serve_searches_are_refused(indexed: Runtime, run_id: str) -> None:
    registry.set_status(indexed.catalog, run_id, "cancelled")
    with pytest.raises(InvalidInputError, match="--resume run-test"):
        registry.activate(indexed, run_id)
    registry.register_model(indexed.catalog, "titan-job", "titan", "amazon.titan-embed-image-v1", "bedrock", "ready")
    with pytest.raises(InvalidInputError, match="Bedrock"):
        registry.activate(indexed, "titan-job")


def test_a_second_activation_during_a_rebuild_is_busy(indexed: Runtime, run_id: str) -> None:
    errors: list[Exception] = []

    def try_again(done: int, total: int, message: str) -> None:
        try:
            registry.activate(indexed, "base")
        except BusyError as exc:
            errors.append(exc)

    registry.activate(indexed, run_id, try_again)
    assert errors and "is running" in str(errors[0])
    assert indexed.active_model().run_id == run_id


def test_search_from_another_thread_is_answered_between_index_save_and_model_swap(
    indexed: Runtime, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_key = indexed.embedder.model_key
    seen: list[tuple[str | None, str, str | None]] = []
    real_swap = indexed.swap_model

    def swap_after_a_search(embedder, active):  # type: ignore[no-untyped-def]
        # The run's index is already saved as current; a visitor's search must not block or fail.
        assert indexed.store.read_manifest().model_key == embedder.model_key
        worker = threading.Thread(target=lambda: seen.append(_serving(indexed)))
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive(), "search blocked during the swap"
        real_swap(embedder, active)

    monkeypatch.setattr(indexed, "swap_model", swap_after_a_search)
    registry.activate(indexed, run_id)
    assert seen and seen[0][0] is None and seen[0][1] == base_key
    assert _serving(indexed)[0] == run_id
