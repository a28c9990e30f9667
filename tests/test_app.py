"""The app's Search tab: handlers, and the search endpoint called as a Gradio event over HTTP."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from carmatch.config import load_settings
from carmatch.errors import InvalidInputError
from carmatch.runtime import Runtime
from carmatch.search.embedder import Embedder
from carmatch.ui import search_tab
from tests.conftest import draw_car_folder, isolate_environment, tiny_model_environment
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


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: tuple[str, str], embedder: Embedder
) -> Iterator[tuple[Runtime, str]]:
    """One app server over an indexed collection, shared by the HTTP tests: (its runtime, its URL)."""
    folder = tmp_path_factory.mktemp("served")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate_environment(monkeypatch, folder)
        tiny_model_environment(monkeypatch, tiny_model)
        import app

        runtime = Runtime(load_settings(), embedder=embedder)
    runtime.ingestor().ingest_folder(draw_car_folder(folder / "cars"))
    demo = app.build_demo(runtime)
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        yield runtime, demo.local_url
    finally:
        demo.close()
        runtime.close()


def test_search_is_callable_as_a_gradio_api(served: tuple[Runtime, str]) -> None:
    from gradio_client import Client, handle_file

    runtime, url = served
    client = Client(url, verbose=False)
    photo = Path(runtime.catalog.get(runtime.catalog.ids()[0]).path)
    gallery, results, notes = client.predict(
        "", handle_file(str(photo)), 2, 0.5, "any", "any", "any", "any", "any", api_name="/search"
    )
    assert len(results) == 2
    assert results[0]["file"] == str(photo)
    assert len(gallery) == 2
    with pytest.raises(Exception, match="description"):
        client.predict("", None, 2, 0.5, "any", "any", "any", "any", "any", api_name="/search")


def test_a_corrupt_upload_gets_a_clear_message_through_the_api(served: tuple[Runtime, str], tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    client = Client(served[1], verbose=False)
    with pytest.raises(Exception, match="corrupt|not an image"):
        client.predict("", handle_file(str(bad)), 2, 0.5, "any", "any", "any", "any", "any", api_name="/search")


def test_importing_app_reads_no_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only running the app (python app.py, gradio app.py, a Space) reads .env; importing it does not."""
    (tmp_path / ".env").write_text("CARMATCH_ADMIN_PASSWORD=from-dotenv\n")  # tmp_path is the working directory
    monkeypatch.delitem(sys.modules, "app", raising=False)  # a fresh import; the earlier module comes back after
    import app

    try:
        assert os.environ.get("CARMATCH_ADMIN_PASSWORD") is None
        assert app.runtime.settings.admin_password == ""
    finally:
        app.runtime.close()
