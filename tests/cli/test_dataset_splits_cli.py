"""`python -m admin dataset splits`: the one train/validation/test split, as JSON ids or counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from admin.cli import main
from carmatch.catalog import Catalog
from carmatch.config import Settings
from carmatch.dataset.training_set import SplitFractions, set_collection_split, split_of
from tests.dataset_support import add_cars


def splits_json(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, list[str]]:
    assert main(["dataset", "splits", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_splits_json_lists_every_training_image_once_in_its_split(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Catalog(settings.db_path) as catalog:
        approved = add_cars(catalog, tmp_path / "img", 24)
        unreviewed = add_cars(catalog, tmp_path / "img", 6, state="unreviewed", first_seed=100)
    data = splits_json(capsys)
    assert list(data) == ["train", "validation", "test"]
    assert sorted(sum(data.values(), [])) == sorted(approved)  # each approved image once, nothing else
    assert all(split_of(i) == name for name, ids in data.items() for i in ids)
    assert sorted(sum(splits_json(capsys, "--include-unreviewed").values(), [])) == sorted(approved + unreviewed)

    with Catalog(settings.db_path) as catalog:  # what `train --test-fraction 0.3` leaves behind
        set_collection_split(catalog, SplitFractions(validation=0.1, test=0.3))
    moved = splits_json(capsys)
    assert all(split_of(i, SplitFractions(0.1, 0.3)) == name for name, ids in moved.items() for i in ids)
    assert len(moved["test"]) > len(data["test"])

    assert main(["dataset", "splits"]) == 0
    text = capsys.readouterr().out
    assert "24 training pairs" in text and "30% test" in text
    assert f"test       {len(moved['test'])}" in text


def test_eval_refuses_fractions_other_than_the_collections_split(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Catalog(settings.db_path) as catalog:
        add_cars(catalog, tmp_path / "img", 12)
    assert main(["eval", "--test-fraction", "0.3"]) == 1
    assert "--test-fraction 0.3" in capsys.readouterr().err
