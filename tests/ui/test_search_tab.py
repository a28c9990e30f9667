"""The Search tab's event functions, called as the browser would: status, search, detail, filters."""

from __future__ import annotations

from pathlib import Path

import pytest

from carmatch.errors import CarmatchError, InvalidInputError
from carmatch.runtime import Runtime
from carmatch.ui import search_actions, server_status
from tests.drawing import draw_car
from tests.ui.rendering import rendered, shown


@pytest.fixture
def indexed(runtime: Runtime, car_folder: Path) -> Runtime:
    runtime.ingestor().ingest_folder(car_folder)
    return runtime


def test_first_visit_on_empty_collection_says_so_and_only_the_admin_reads_how_to_ingest(runtime: Runtime) -> None:
    text = search_actions.status_markdown(runtime)
    assert text == server_status.EMPTY  # a visitor gets one plain line, no commands
    assert ".venv/bin/carmatch ingest" in server_status.admin_status(runtime)


def test_status_shows_count_and_model_in_plain_words(indexed: Runtime) -> None:
    text = search_actions.status_markdown(indexed)
    assert text.startswith("**6 cars** · searched with the ") and "vectors" not in text
    assert "6 vectors" in server_status.admin_status(indexed)


def test_search_handler_returns_thumbnails_captions_and_scores(indexed: Runtime) -> None:
    image = draw_car("blue", "pickup", seed=2)
    gallery, results, notes = search_actions.search(indexed, "", image, 3, 0.5)
    assert len(gallery) == 3 and len(results) == 3
    thumb, label = gallery[0]
    assert Path(thumb).exists() and Path(thumb).resolve().is_relative_to(indexed.settings.thumbs_dir.resolve())
    assert label.endswith(f"\nsimilarity {results[0]['score']:.3f}")  # below the caption, named
    assert results[0]["file"] == "blue_pickup.png"  # the file name: visitors never see server paths
    assert set(results[0]) == {"id", "file", "score", "caption"}


def test_search_handler_refuses_empty_query(indexed: Runtime) -> None:
    with pytest.raises(InvalidInputError):
        search_actions.search(indexed, "  ", None, 3, 0.5)


def test_detail_shows_selected_result_large_with_file_name(indexed: Runtime) -> None:
    _, results, _ = search_actions.search(indexed, "a car", None, 3, 0.5)
    image, text = search_actions.detail(results, 1, indexed)
    assert image is not None and image.size == (96, 64)
    assert results[1]["file"] in shown(text) and str(indexed.settings.home.resolve()) not in shown(text)
    assert results[1]["id"][:12] not in text  # an id prefix is nothing a visitor can use


def test_filters_from_ui_become_where_clauses() -> None:
    where = search_actions.build_where("red", "any", None, "", "approved")
    assert where == {"color": "red", "review_state": "approved"}


def test_no_matches_names_the_filters_to_relax(indexed: Runtime) -> None:
    _, results, notes = search_actions.search(indexed, "a car", None, 3, 0.5, {"color": "purple"})
    assert results == [] and "color = purple" in notes and "Clear filters" in notes


def test_filter_choices_are_sorted_with_counts(indexed: Runtime) -> None:
    records = list(indexed.catalog.get_many(indexed.catalog.ids()).values())
    for record, color in zip(records, ["red", "blue", "red"]):
        indexed.catalog.set_caption(record.id, "a car", "human", attributes={"color": color})
    choices = search_actions.filter_choices(indexed)["color"]
    assert choices == [("any", "any"), ("blue (1)", "blue"), ("red (2)", "red")]


def test_find_similar_uses_the_selected_images_file(indexed: Runtime) -> None:
    _, results, _ = search_actions.search(indexed, "a car", None, 3, 0.5)
    path = search_actions.similar_source(indexed, results[1]["id"])
    assert Path(path).name == results[1]["file"] and Path(path).is_file()
    with pytest.raises(InvalidInputError, match="Select a result"):
        search_actions.similar_source(indexed, None)


def _failing_runtime(base: Runtime, monkeypatch: pytest.MonkeyPatch, **overrides: object) -> Runtime:
    """A Runtime over ``base``'s home whose model cannot load (no weights, no network)."""
    from carmatch.errors import ModelLoadError

    def no_weights(*_: object, **__: object) -> object:
        raise ModelLoadError("The weights are not downloaded yet. Fix: CARMATCH_PRETRAINED=none make run")

    monkeypatch.setattr("carmatch.embedding.loading.load_clip", no_weights)
    return Runtime(base.settings.with_overrides(**overrides))


def test_a_model_that_failed_to_load_is_the_first_thing_the_page_says(
    indexed: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = _failing_runtime(indexed, monkeypatch)
    loader = rt.start_loading()
    assert loader is not None
    loader.join()
    text = shown(search_actions.status_markdown(rt))
    assert text.startswith(server_status.UNAVAILABLE) and "weights" not in text and "CARMATCH" not in text
    assert "6 cars" in text
    admin = shown(server_status.admin_status(rt))
    assert admin.startswith("⚠️ The weights are not downloaded yet. Fix: CARMATCH_PRETRAINED=none make run")
    assert "(failed)" in admin
    rt.close()


def test_retrying_the_model_needs_the_admin_password_and_then_loads_it(
    indexed: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from carmatch.errors import AccessDeniedError

    rt = _failing_runtime(indexed, monkeypatch, admin_password="secret")
    with pytest.raises(CarmatchError):
        _ = rt.embedder
    with pytest.raises(AccessDeniedError):
        server_status.retry_model(rt, "wrong")
    assert rt.model_error() is not None  # a wrong password changes nothing
    monkeypatch.setattr("carmatch.embedding.loading.load_clip", lambda *a, **k: indexed.embedder)
    text = server_status.retry_model(rt, "secret")
    assert "⚠️" not in text and "on cpu" in text and rt.model_error() is None
    rt.close()


def test_open_page_learns_that_another_model_was_activated(indexed: Runtime) -> None:
    from carmatch.runtime import ActiveModel

    shown = search_actions.model_key(indexed)
    assert search_actions.model_change_note(indexed, shown) == (None, "base")
    indexed.set_active_model(ActiveModel(indexed.active_model().spec, "run-new"))
    text, current = search_actions.model_change_note(indexed, shown)
    assert current == "run-new" and text is not None and "changed to **run-new**" in text
    assert search_actions.model_change_note(indexed, current) == (None, "run-new")


HOSTILE = '<img src="http://tracker.example/p.png"> see [offer](http://evil.example) **now** `x` # big'


def test_the_detail_view_shows_captions_and_file_names_as_plain_text(indexed: Runtime) -> None:
    _, results, _ = search_actions.search(indexed, "a car", None, 3, 0.5)
    results[1]["caption"] = HOSTILE
    _, text = search_actions.detail(results, 1, indexed)
    html = rendered(text)
    assert "<img" not in html and "<a " not in html and "<h1" not in html and html.count("<strong>") == 1
    assert HOSTILE in shown(text)  # every character shown as typed; only the file name is bold


def test_filter_values_echoed_in_notes_are_plain_text() -> None:
    note = search_actions.no_matches_note({"make": "[x](http://evil.example)"})
    assert "<a " not in rendered(note) and "[x](http://evil.example)" in shown(note)


def test_a_link_names_a_description_and_filters_and_nothing_else() -> None:
    from carmatch.ui.search_links import query_from_url, tab_from_url

    text, where = query_from_url({"q": "  red suv ", "color": "Red", "make": "any", "state": "approved", "x": "1"})
    assert (text, where) == ("red suv", {"color": "red"})
    assert query_from_url({"q": "a" * 10_000})[0] == "a" * 500  # a hand-made link is cut, never an error
    assert tab_from_url({"tab": "Dataset"}) == "dataset" and tab_from_url({"tab": "admin"}) is None
