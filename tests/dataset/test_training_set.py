"""The training set: one rule for which captions are training data, one split that every consumer uses."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from carmatch.catalog import Catalog
from carmatch.config import Settings
from carmatch.dataset.export_titan import export_titan
from carmatch.dataset.training_set import (
    SplitFractions,
    collection_split,
    iter_records,
    matching_split,
    requested_split,
    set_collection_split,
    split_of,
    splits,
    training_set,
)
from carmatch.errors import InvalidInputError
from carmatch.runtime import Runtime
from carmatch.training.data import catalog_pairs, dataset_summary, read_pairs_jsonl
from carmatch.training.registry import evaluate_models
from carmatch.training.runs import default_config, prepare_run
from tests.dataset_support import add, add_cars, car


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    with Catalog(tmp_path / "c.db") as cat:
        yield cat


def titan_ids(folder: Path) -> dict[str, set[str]]:
    """The image ids in a Titan export's train.jsonl and validation.jsonl."""
    out = {}
    for name in ("train", "validation"):
        lines = [json.loads(x) for x in (folder / f"{name}.jsonl").read_text().splitlines()]
        out[name] = {line["image-ref"].rsplit("/", 1)[1].split(".")[0] for line in lines}
    return out


def test_split_depends_only_on_the_image_hash() -> None:
    ids = [f"{n:064x}" for n in range(2000)]
    names = [split_of(i) for i in ids]
    assert names == [split_of(i) for i in reversed(ids)][::-1]  # order and company do not matter
    assert 0.07 < names.count("test") / len(ids) < 0.13
    assert 0.07 < names.count("validation") / len(ids) < 0.13
    assert set(names) == {"train", "validation", "test"}


def test_split_keeps_the_clip_salt_so_existing_test_splits_do_not_move() -> None:
    def clip_split_before(image_id: str, val: float, test: float) -> str:  # the split CLIP runs always used
        bucket = int(hashlib.sha256(f"carmatch-split-v1:{image_id}".encode()).hexdigest()[:12], 16) / 16**12
        return "test" if bucket < test else ("validation" if bucket < test + val else "train")

    ids = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(500)]
    for val, test in ((0.1, 0.1), (0.2, 0.25)):
        assert [split_of(i, SplitFractions(val, test)) for i in ids] == [clip_split_before(i, val, test) for i in ids]


def test_rule_takes_approved_captions_never_rejected_deleted_or_empty(catalog: Catalog, tmp_path: Path) -> None:
    d = tmp_path / "img"
    approved = add(catalog, car(d / "a.png", 1), "a red sedan")
    unreviewed = add(catalog, car(d / "u.png", 2), "a red coupe", "unreviewed")
    add(catalog, car(d / "r.png", 3), "a wrong caption", "rejected")
    deleted = add(catalog, car(d / "x.png", 4), "a deleted sedan")
    add(catalog, car(d / "e.png", 5), "   ")
    add(catalog, car(d / "n.png", 6), None)
    catalog.delete_images([deleted])

    chosen = training_set(catalog)
    assert chosen.source == "approved"
    assert [r.id for r in iter_records(catalog, chosen)] == [approved]
    with_unreviewed = training_set(catalog, include_unreviewed=True)
    assert with_unreviewed.source == "approved+unreviewed"
    assert {r.id for r in iter_records(catalog, with_unreviewed)} == {approved, unreviewed}
    assert sorted(sum(splits(catalog, include_unreviewed=True).values(), [])) == sorted([approved, unreviewed])


def test_unreviewed_captions_are_the_fallback_only_while_nothing_is_approved(
    catalog: Catalog, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    d = tmp_path / "img"
    first, second = (add(catalog, car(d / f"u{i}.png", i), f"a red sedan {i}", "unreviewed") for i in range(2))
    add(catalog, car(d / "r.png", 9), "a wrong caption", "rejected")
    with caplog.at_level(logging.WARNING):
        chosen = training_set(catalog)
    assert chosen.source == "unreviewed" and "No approved captions yet" in caplog.text
    assert {r.id for r in iter_records(catalog, chosen)} == {first, second}

    catalog.set_review_state(first, "approved")
    chosen = training_set(catalog)
    assert chosen.source == "approved" and [r.id for r in iter_records(catalog, chosen)] == [first]


def test_the_collection_split_is_stored_and_evaluation_cannot_use_another(tmp_path: Path) -> None:
    with Catalog(tmp_path / "c.db") as catalog:
        assert collection_split(catalog) == SplitFractions(0.1, 0.1)
        assert set_collection_split(catalog, SplitFractions(0.1, 0.3)) is True
        assert set_collection_split(catalog, SplitFractions(0.1, 0.3)) is False  # unchanged: nothing moves
        with pytest.raises(InvalidInputError, match="sum below 1"):
            set_collection_split(catalog, SplitFractions(0.5, 0.6))
    with Catalog(tmp_path / "c.db") as catalog:  # it is a fact of the collection, kept on disk
        assert collection_split(catalog) == SplitFractions(0.1, 0.3)
        assert requested_split(catalog, test=0.2) == SplitFractions(0.1, 0.2)
        assert matching_split(catalog, test=0.3) == SplitFractions(0.1, 0.3)
        with pytest.raises(InvalidInputError, match="--test-fraction 0.2"):
            matching_split(catalog, test=0.2)


def test_every_consumer_uses_the_collection_split(runtime: Runtime, tmp_path: Path) -> None:
    catalog = runtime.catalog
    ids = add_cars(catalog, tmp_path / "img", 30)
    set_collection_split(catalog, SplitFractions(validation=0.2, test=0.3))
    expected = splits(catalog)
    assert sorted(sum(expected.values(), [])) == sorted(ids) and all(expected.values())

    pairs, _ = catalog_pairs(catalog)  # CLIP fine-tuning
    assert {name: sorted(p.image_id for p in pairs if p.split == name) for name in expected} == expected
    summary = dataset_summary(catalog)  # the Training tab
    assert [summary[name] for name in expected] == [len(v) for v in expected.values()]
    metrics = evaluate_models(runtime, ["base"], "test")["base"]  # eval: one text per test image (unique captions)
    assert metrics["n_texts"] == len(expected["test"])
    with pytest.raises(InvalidInputError, match="split"):
        evaluate_models(runtime, ["base"], "test", test_fraction=0.1)

    report = export_titan(catalog, tmp_path / "titan", "s3://bucket/t/")  # Titan
    exported = titan_ids(tmp_path / "titan")
    assert report.held_out == len(expected["test"])
    assert set(expected["validation"]) <= exported["validation"]  # topped up to Titan's minimum from train
    assert exported["train"] | (exported["validation"] - set(expected["validation"])) <= set(expected["train"])


def test_no_image_of_the_clip_test_split_reaches_a_titan_file(settings: Settings, tmp_path: Path) -> None:
    """THE leak: train with a non-default test fraction, then export for Titan with the defaults."""
    with Catalog(settings.db_path) as catalog:
        ids = set(add_cars(catalog, tmp_path / "img", 40))
        config = default_config(settings, catalog, test_fraction=0.3, batch_size=8)
        run_id = prepare_run(catalog, settings, config)
        clip_pairs = read_pairs_jsonl(settings.runs_dir / run_id / "pairs.jsonl")
        clip_test = {p.image_id for p in clip_pairs if p.split == "test"}

        report = export_titan(catalog, tmp_path / "titan", "s3://bucket/t/")
        exported = titan_ids(tmp_path / "titan")
        titan = exported["train"] | exported["validation"]
        assert len(clip_test) >= 8 and len(titan) >= 20  # both sides are large: the check has teeth
        assert clip_test.isdisjoint(titan)
        assert titan | clip_test == ids and report.held_out == len(clip_test)  # nothing else was lost
        assert {p.image_id for p in clip_pairs if p.split == "validation"} <= exported["validation"]

        # a default `train` afterwards keeps the collection's split rather than moving images back
        assert default_config(settings, catalog).test_fraction == 0.3
