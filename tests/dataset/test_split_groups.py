"""Split groups: near copies of one photo (or the crops of one frame) always land on one side of the split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from carmatch.catalog import Catalog
from carmatch.config import Settings
from carmatch.dataset.duplicates import find_duplicates
from carmatch.dataset.training_set import (
    add_split_groups,
    set_split_groups,
    split_groups,
    split_of,
    splits,
    training_set,
)
from tests.dataset_support import add_cars

MODEL_KEY = "test-model@abc"


def near_copy_vectors(groups: int, copies: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """``groups`` random unit photos, each followed by ``copies - 1`` copies a hair away from it."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(groups):
        photo = rng.normal(size=dim)
        rows += [photo + (0.0 if c == 0 else 0.01) * rng.normal(size=dim) for c in range(copies)]
    vectors = np.array(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_near_copies_of_a_test_image_never_reach_training(settings: Settings, tmp_path: Path) -> None:
    with Catalog(settings.db_path) as catalog:
        ids = add_cars(catalog, tmp_path / "img", 60, state="approved")
        catalog.put_embeddings(MODEL_KEY, ids, near_copy_vectors(20, 3))
        by_id = [ids[i : i + 3] for i in range(0, 60, 3)]
        apart = [g for g in by_id if len({split_of(i) for i in g}) > 1]
        assert apart, "by image id alone some copies would be split apart (the test could not fail)"

        groups = find_duplicates(catalog, MODEL_KEY, settings.home)

        assert sorted(sorted(g.members) for g in groups) == sorted(sorted(g) for g in by_id)
        where = {i: name for name, members in splits(catalog).items() for i in members}
        for group in by_id:
            assert len({where[i] for i in group}) == 1, "a near-copy group is split across train/validation/test"
        test_ids = {i for i, name in where.items() if name == "test"}
        train_ids = {i for i, name in where.items() if name == "train"}
        assert not any(set(g) & test_ids and set(g) & train_ids for g in by_id)


def test_each_group_follows_the_split_of_its_smallest_id(settings: Settings, tmp_path: Path) -> None:
    with Catalog(settings.db_path) as catalog:
        ids = add_cars(catalog, tmp_path / "img", 6)
        set_split_groups(catalog, "near_duplicates", {ids[1]: min(ids[1], ids[2]), ids[2]: min(ids[1], ids[2])})
        chosen = training_set(catalog)
        assert chosen.split(ids[1]) == chosen.split(ids[2]) == split_of(min(ids[1], ids[2]))
        assert chosen.split(ids[0]) == split_of(ids[0])  # an image with no group keeps its own split


def test_groups_from_different_sources_join(settings: Settings, tmp_path: Path) -> None:
    """A crop of frame F that is a near copy of a crop of frame G puts all of F and G in one split."""
    with Catalog(settings.db_path) as catalog:
        a, b, c, d = add_cars(catalog, tmp_path / "img", 4)
        add_split_groups(catalog, "frames", {a: "frame-F", b: "frame-F"})
        add_split_groups(catalog, "frames", {c: "frame-G"})
        set_split_groups(catalog, "near_duplicates", {b: min(b, c), c: min(b, c)})
        groups = split_groups(catalog)  # an image missing from it is its own group's key
        key = {i: groups.get(i, i) for i in (a, b, c, d)}
        assert key[a] == key[b] == key[c] == min(a, b, c, "frame-F", "frame-G")
        assert key[d] == d
        set_split_groups(catalog, "near_duplicates", {})  # a new scan found no copies: the frames stay apart
        groups = split_groups(catalog)
        assert groups.get(a, a) == groups.get(b, b) != groups.get(c, c)
