"""The Search tab's event functions, called as the browser would: status, search, detail, filters."""

from __future__ import annotations

from pathlib import Path

import pytest

from carmatch.errors import InvalidInputError
from carmatch.runtime import Runtime
from carmatch.ui import search_actions
from tests.drawing import draw_car


@pytest.fixture
def indexed(runtime: Runtime, car_folder: Path) -> Runtime:
    runtime.ingestor().ingest_folder(car_folder)
    return runtime


def test_first_visit_on_empty_collection_explains_how_to_ingest(runtime: Runtime) -> None:
    text = search_actions.status_markdown(runtime)
    assert "collection is empty" in text and "python -m admin ingest" in text


def test_status_shows_count_and_model(indexed: Runtime) -> None:
    text = search_actions.status_markdown(indexed)
    assert "6 images" in text and "6 vectors" in text


def test_search_handler_returns_thumbnails_captions_and_scores(indexed: Runtime) -> None:
    image = draw_car("blue", "pickup", seed=2)
    gallery, results, notes = search_actions.search(indexed, "", image, 3, 0.5)
    assert len(gallery) == 3 and len(results) == 3
    thumb, label = gallery[0]
    assert Path(thumb).exists() and Path(thumb).is_relative_to(indexed.settings.thumbs_dir)
    assert label.startswith(f"{results[0]['score']:.3f}")
    assert Path(results[0]["file"]).name == "blue_pickup.png"
    assert set(results[0]) == {"id", "file", "score", "caption"}


def test_search_handler_refuses_empty_query(indexed: Runtime) -> None:
    with pytest.raises(InvalidInputError):
        search_actions.search(indexed, "  ", None, 3, 0.5)


def test_detail_shows_selected_result_large_with_file_name(indexed: Runtime) -> None:
    _, results, _ = search_actions.search(indexed, "a car", None, 3, 0.5)
    image, text = search_actions.detail(results, 1)
    assert image is not None and image.size == (96, 64)
    assert Path(results[1]["file"]).name in text


def test_filters_from_ui_become_where_clauses() -> None:
    where = search_actions.build_where("red", "any", None, "", "approved")
    assert where == {"color": "red", "review_state": "approved"}
