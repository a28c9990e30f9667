"""The app's Search tab: handlers, and the search endpoint called as a Gradio event over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from carmatch.errors import InvalidInputError
from carmatch.runtime import Runtime
from carmatch.ui import search_tab
from tests.drawing import draw_car


@pytest.fixture
def indexed(runtime: Runtime, car_folder: Path) -> Runtime:
    runtime.ingestor().ingest_folder(car_folder)
    return runtime


def test_first_visit_on_empty_collection_explains_how_to_ingest(runtime: Runtime) -> None:
    text = search_tab.status_markdown(runtime)
    assert "collection is empty" in text and "python -m admin ingest" in text


def test_status_shows_count_and_model(indexed: Runtime) -> None:
    text = search_tab.status_markdown(indexed)
    assert "6 images" in text and "6 vectors" in text


def test_search_handler_returns_thumbnails_captions_and_scores(indexed: Runtime) -> None:
    image = draw_car("blue", "pickup", seed=2)
    gallery, results, notes = search_tab.search(indexed, "", image, 3, 0.5)
    assert len(gallery) == 3 and len(results) == 3
    thumb, label = gallery[0]
    assert Path(thumb).exists() and Path(thumb).is_relative_to(indexed.settings.thumbs_dir)
    assert label.startswith(f"{results[0]['score']:.3f}")
    assert Path(results[0]["file"]).name == "blue_pickup.png"
    assert set(results[0]) == {"id", "file", "score", "caption"}


def test_search_handler_refuses_empty_query(indexed: Runtime) -> None:
    with pytest.raises(InvalidInputError):
        search_tab.search(indexed, "  ", None, 3, 0.5)


def test_detail_shows_selected_result_large_with_file_name(indexed: Runtime) -> None:
    _, results, _ = search_tab.search(indexed, "a car", None, 3, 0.5)
    image, text = search_tab.detail(results, 1)
    assert image is not None and image.size == (96, 64)
    assert Path(results[1]["file"]).name in text


def test_filters_from_ui_become_where_clauses() -> None:
    assert search_tab.build_where("red", "any", None, "", "approved") == {"color": "red", "review_state": "approved"}


def test_search_is_callable_as_a_gradio_api(indexed: Runtime) -> None:
    from gradio_client import Client, handle_file

    import app

    demo = app.build_demo(indexed)
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        photo = Path(indexed.catalog.get(indexed.catalog.ids()[0]).path)
        gallery, results, notes = client.predict(
            "", handle_file(str(photo)), 2, 0.5, "any", "any", "any", "any", "any", api_name="/search"
        )
        assert len(results) == 2
        assert results[0]["file"] == str(photo)
        assert len(gallery) == 2
        with pytest.raises(Exception, match="description"):
            client.predict("", None, 2, 0.5, "any", "any", "any", "any", "any", api_name="/search")
    finally:
        demo.close()


def test_a_corrupt_upload_gets_a_clear_message_through_the_api(indexed: Runtime, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    import app

    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    demo = app.build_demo(indexed)
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        with pytest.raises(Exception, match="corrupt|not an image"):
            client.predict("", handle_file(str(bad)), 2, 0.5, "any", "any", "any", "any", "any", api_name="/search")
    finally:
        demo.close()
