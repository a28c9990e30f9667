"""Search: self-match, text+image blending, filters and clear errors for bad queries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from carmatch.errors import (
    EmptyCollectionError,
    ImageError,
    IndexMissingError,
    InvalidInputError,
    ModelMismatchError,
)
from carmatch.images import load_image
from carmatch.runtime import Runtime
from tests.drawing import draw_car


@pytest.fixture
def indexed(runtime: Runtime, car_folder: Path) -> Runtime:
    runtime.ingestor().ingest_folder(car_folder)
    return runtime


def test_an_image_queried_by_itself_comes_back_first(indexed: Runtime, car_folder: Path) -> None:
    for path in sorted(car_folder.rglob("*.*")):
        response = indexed.search(image=path, k=3)
        assert Path(response.results[0].path) == path.resolve()
        assert response.results[0].score == pytest.approx(1.0, abs=1e-3)
        scores = [r.score for r in response.results]
        assert scores == sorted(scores, reverse=True)


def test_text_search_returns_k_results_with_captions(indexed: Runtime, car_folder: Path) -> None:
    record = indexed.catalog.find_by_path(str((car_folder / "red_sedan.jpg").resolve()))
    indexed.catalog.set_caption(record.id, "a red sedan", "human")
    response = indexed.search(text="red pickup truck", k=4)
    assert len(response.results) == 4
    assert len({r.id for r in response.results}) == 4
    by_id = {r.id: r for r in indexed.search(text="car", k=6).results}
    assert by_id[record.id].caption == "a red sedan"


def test_blend_ranks_by_the_weighted_sum_of_both_query_vectors(indexed: Runtime, car_folder: Path) -> None:
    embedder = indexed.embedder
    photo = car_folder / "blue_pickup.png"
    text = "a yellow sedan"
    t = embedder.encode_texts([text])[0]
    i = embedder.encode_images([load_image(photo).image])[0]
    index = indexed.index()
    for weight in (0.0, 0.3, 0.7, 1.0):
        expected_query = (1 - weight) * t + weight * i
        expected = [image_id for image_id, _ in index.search_exact(expected_query, k=6)]
        got = [r.id for r in indexed.search(text=text, image=photo, k=6, image_weight=weight).results]
        assert got == expected, weight
    image_only = indexed.search(text=text, image=photo, k=1, image_weight=1.0).results[0]
    assert Path(image_only.path) == photo.resolve()


def test_filters_restrict_results_and_still_return_k(indexed: Runtime) -> None:
    ids = indexed.catalog.ids()
    for image_id in ids[:3]:
        indexed.catalog.set_caption(image_id, "a car", "human", attributes={"color": "Red", "body_type": "suv"})
    response = indexed.search(text="car", k=3, where={"color": "red"})
    assert sorted(r.id for r in response.results) == sorted(ids[:3])
    assert indexed.search(text="car", k=10, where={"color": "red", "body_type": "suv"}).results
    assert indexed.search(text="car", k=5, where={"color": "purple"}).results == []
    with pytest.raises(InvalidInputError, match="Unknown filter"):
        indexed.search(text="car", where={"wheels": "4"})


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_refused(indexed: Runtime, text: str) -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        indexed.search(text=text)


def test_overlong_text_is_truncated_with_a_note(indexed: Runtime) -> None:
    response = indexed.search(text="a very long description of a red car " * 40, k=2)
    assert len(response.results) == 2
    assert any("77" in note for note in response.notes)
    assert indexed.search(text="red car", k=2).notes == []


def test_unreadable_image_is_refused(indexed: Runtime, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ImageError, match="not an image"):
        indexed.search(image=bad)
    with pytest.raises(ImageError, match="cannot read"):
        indexed.search(image=tmp_path / "missing.jpg")


def test_k_out_of_range_is_refused(indexed: Runtime) -> None:
    with pytest.raises(InvalidInputError):
        indexed.search(text="car", k=0)


def test_empty_collection_says_how_to_add_images(runtime: Runtime) -> None:
    with pytest.raises(EmptyCollectionError, match="carmatch ingest"):
        runtime.search(text="red car")


def test_missing_index_says_how_to_rebuild(indexed: Runtime) -> None:
    import shutil

    indexed.search(text="red car")  # the index is loaded in memory now
    shutil.rmtree(indexed.settings.index_dir)
    with pytest.raises(IndexMissingError, match="index rebuild"):
        indexed.search(text="red car")


def test_deleted_image_disappears_from_results(indexed: Runtime, car_folder: Path) -> None:
    photo = car_folder / "sub" / "green_van.webp"
    first = indexed.search(image=photo, k=1).results[0]
    indexed.catalog.delete_images([first.id])
    indexed.ingestor().ingest_folder(car_folder)  # syncs the index with the catalog
    assert first.id not in {r.id for r in indexed.search(image=photo, k=10).results}


def test_search_refuses_index_built_by_other_model(
    indexed: Runtime, tiny_model: tuple[str, str], tmp_path: Path
) -> None:
    import torch

    from carmatch.embedding.embedder import load_clip

    state = torch.load(tiny_model[1])
    state = {k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}
    other_ckpt = tmp_path / "other.pt"
    torch.save(state, other_ckpt)
    other = load_clip(tiny_model[0], str(other_ckpt), "cpu")
    assert other.model_key != indexed.embedder.model_key
    with pytest.raises(ModelMismatchError, match="index rebuild"):
        indexed.store.load(other.model_key)
    fresh = Runtime(indexed.settings, embedder=other)
    with pytest.raises(ModelMismatchError, match="index rebuild"):
        fresh.search(text="red car")
    fresh.close()


def test_query_by_pil_image_and_bytes(indexed: Runtime) -> None:
    img = draw_car("red", "sedan", seed=1)
    a = indexed.search(image=img, k=3).results
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    b = indexed.search(image=buf.getvalue(), k=3).results
    assert [r.id for r in a] == [r.id for r in b]
    assert np.isclose(a[0].score, b[0].score)


def test_untrained_model_is_the_same_in_every_load(tiny_model: tuple[str, str]) -> None:
    from carmatch.embedding.embedder import load_clip

    first = load_clip(tiny_model[0], "none", "cpu")
    second = load_clip(tiny_model[0], "none", "cpu")
    assert first.model_key == second.model_key  # an index built with `none` stays searchable
