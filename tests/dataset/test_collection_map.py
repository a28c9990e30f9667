"""The map of the collection and the duplicate groups: projection, cache, downsampling, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from admin.cli import main
from carmatch.catalog import Catalog
from carmatch.config import Settings
from carmatch.dataset.collection_map import collection_map, downsample, point_labels, project
from tests.dataset_support import add_cars

MODEL_KEY = "test-model@abc"


def two_clusters(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, dim))
    rows = centres[np.arange(n) % 2] + 0.05 * rng.normal(size=(n, dim))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_the_map_puts_two_kinds_of_car_apart_and_is_the_same_every_time() -> None:
    vectors = two_clusters(40)
    xy = project(vectors)
    assert xy.shape == (40, 2)
    first, second = xy[0::2, 0], xy[1::2, 0]
    assert first.max() < second.min() or second.max() < first.min()  # the first axis separates the clusters
    assert np.array_equal(project(vectors), xy)
    sampled = project(vectors, sample_rows=10)  # axes from a sample (large collections): still apart
    assert sampled[0::2, 0].max() < sampled[1::2, 0].min() or sampled[1::2, 0].max() < sampled[0::2, 0].min()


def test_the_map_is_cached_per_model_until_the_images_change(settings: Settings, tmp_path: Path) -> None:
    with Catalog(settings.db_path) as catalog:
        ids = add_cars(catalog, tmp_path / "img", 10)
        catalog.put_embeddings(MODEL_KEY, ids[:8], two_clusters(8))
        first = collection_map(catalog, MODEL_KEY, settings.home)
        assert sorted(first.ids) == sorted(ids[:8])
        calls = []
        cached = collection_map(catalog, MODEL_KEY, settings.home, lambda *a: calls.append(a))
        assert not calls and cached.ids == first.ids and np.allclose(cached.xy, first.xy, atol=1e-4)
        catalog.put_embeddings(MODEL_KEY, ids[8:], two_clusters(2, seed=1))
        assert sorted(collection_map(catalog, MODEL_KEY, settings.home).ids) == sorted(ids)
        assert collection_map(catalog, "other@1", settings.home).ids == []


def test_downsampling_keeps_the_asked_points_and_no_more() -> None:
    chosen = downsample(100_000, 1000, keep=[5, 99_999])
    assert len(chosen) == 1000 and {5, 99_999} <= set(chosen.tolist()) and len(set(chosen.tolist())) == 1000
    assert downsample(10, 1000).tolist() == list(range(10))


def test_points_are_coloured_by_attribute_state_or_score(settings: Settings, tmp_path: Path) -> None:
    with Catalog(settings.db_path) as catalog:
        ids = add_cars(catalog, tmp_path / "img", 2)
        catalog.set_caption(ids[0], "a blue van", "human", {"color": "Blue"})
        records = catalog.get_many(ids)
    assert point_labels(records, ids, "color") == ["blue", "unknown"]
    assert point_labels(records, ids, "review_state") == [records[i].review_state for i in ids]
    assert point_labels(records, ids, "suspect score", {ids[1]: 0.7}) == [0.0, 0.7]


def test_cli_writes_the_map_and_lists_duplicate_groups(
    settings: Settings, car_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = car_folder / "red_sedan.jpg"
    Image.open(original).resize((80, 53)).save(car_folder / "red_sedan_small.png")  # a near copy
    assert main(["ingest", str(car_folder)]) == 0
    capsys.readouterr()

    assert main(["dataset", "duplicates", "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)
    with Catalog(settings.db_path) as catalog:
        by_name = {Path(r.path).name: r.id for r in catalog.get_many(catalog.ids()).values()}
    pair = {by_name["red_sedan.jpg"], by_name["red_sedan_small.png"]}
    assert any(pair <= set(g["members"]) for g in groups)
    assert all(g["keep"] == g["members"][0] and len(g["members"]) > 1 for g in groups)

    out = tmp_path / "map.html"
    assert main(["dataset", "map", "--out", str(out), "--colour-by", "review_state"]) == 0
    page = out.read_text(encoding="utf-8")
    assert "plotly" in page.lower() and by_name["white_van.png"] in page
    assert main(["dataset", "map", "--out", str(tmp_path / "map.txt")]) == 1
    assert "--out" in capsys.readouterr().err
