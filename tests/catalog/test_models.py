"""Catalog models: a registered model round-trips, keeps its creation time, and lists newest first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from carmatch.catalog import Catalog
from carmatch.catalog import models as models_table


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog(tmp_path / "c.db")
    yield cat
    cat.close()


def _clock(monkeypatch: pytest.MonkeyPatch, *stamps: str) -> None:
    times = iter(stamps)
    monkeypatch.setattr(models_table, "now_iso", lambda: next(times))


def test_model_round_trips_and_an_update_keeps_created_at(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clock(monkeypatch, "2024-01-01T00:00:00+00:00", "2024-02-01T00:00:00+00:00")
    saved = catalog.save_model(
        "run-1", "local", "ViT-B-32", "openai", "running", config={"out": tmp_path}, metrics={"loss": 1.5}
    )
    assert saved.created_at == "2024-01-01T00:00:00+00:00" and saved.config == {"out": str(tmp_path)}
    updated = catalog.save_model("run-1", "local", "ViT-B-32", "openai", "ready", "/runs/run-1/best.pt")
    assert updated.created_at == "2024-01-01T00:00:00+00:00"  # kept
    assert (updated.status, updated.checkpoint, updated.metrics) == ("ready", "/runs/run-1/best.pt", {})
    assert catalog.find_model("run-1") == updated
    assert catalog.find_model("run-2") is None


def test_models_list_newest_first(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    _clock(monkeypatch, "2024-01-02T00:00:00+00:00", "2024-01-01T00:00:00+00:00", "2024-01-03T00:00:00+00:00")
    for run_id in ("b", "a", "c"):
        catalog.save_model(run_id, "local", "ViT-B-32", "openai", "ready")
    assert [m.id for m in catalog.models()] == ["c", "b", "a"]
    assert catalog.recent_model_ids(2) == ["c", "b"]


def test_empty_catalog_has_no_models(catalog: Catalog) -> None:
    assert catalog.models() == [] and catalog.recent_model_ids() == []
