"""The per-client search limit covers every Search-tab event that does work, not only the Search button."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from carmatch.runtime import Runtime

gr = pytest.importorskip("gradio")

VISITOR, OTHER = "203.0.113.7", "198.51.100.1"
QUERY = ("a red car", None, 2, 0.5, "any", "any", "any", "any", "any")  # the Search inputs, in order
FILTERS = ("red", "any", "any", "any", "any")  # the filter dropdowns and the hidden review state


def request(host: str) -> Any:
    return gr.Request(client={"host": host})


@pytest.fixture
def handlers(runtime: Runtime, car_folder: Path) -> dict[str, list[Callable[..., Any]]]:
    """The Search tab's event functions by name, built with a limit of 2 calls a minute per client."""
    from carmatch.ui import search_tab

    runtime.settings = runtime.settings.with_overrides(search_per_minute=2)
    runtime.ingestor().ingest_folder(car_folder)
    from carmatch.access import RateLimit

    with gr.Blocks() as demo:
        search_tab.build(demo, runtime, RateLimit(2))
    found: dict[str, list[Callable[..., Any]]] = {}
    for block_fn in demo.fns.values():
        if block_fn.fn is not None:
            found.setdefault(block_fn.fn.__name__, []).append(block_fn.fn)
    return found


def test_find_similar_counts_against_the_visitors_search_limit(handlers: dict[str, list[Callable[..., Any]]]) -> None:
    search, similar = handlers["search_page"][0], handlers["on_similar"][0]
    _, results, *_ = search(*QUERY, request=request(VISITOR))  # 1 of 2
    assert len(results) == 2
    photo, text, _, found, *_ = similar(results[0]["id"], *QUERY, request=request(VISITOR))  # 2 of 2
    assert photo is not None and text == "" and len(found) == 2
    refused = similar(results[0]["id"], *QUERY, request=request(VISITOR))
    assert "Too many searches from your address" in refused[5]
    kept = [*refused[:5], *refused[6:]]
    assert all(getattr(value, "get", lambda _k: None)("__type__") == "update" for value in kept)  # nothing changes
    assert len(similar(results[0]["id"], *QUERY, request=request(OTHER))[3]) == 2  # another visitor is not held up


def test_a_changed_filter_searches_again_and_counts_against_the_limit(
    handlers: dict[str, list[Callable[..., Any]]],
) -> None:
    live = handlers["live_search"]
    assert len(live) == 7  # the photo weight, a dropped photo, the four filters, and "which car?" in a traffic frame
    nothing = live[2]("", None, *QUERY[2:], request=request(VISITOR))  # no query yet: no search, not counted
    assert all(value == gr.update() for value in nothing)
    for _ in range(2):
        _, results, *_ = live[2](*QUERY, request=request(VISITOR))
        assert len(results) == 2
    assert "Too many searches from your address" in live[2](*QUERY, request=request(VISITOR))[3]
    assert len(live[2](*QUERY, request=request(OTHER))[1]) == 2
    label = handlers["on_filters"][0](*FILTERS)[0]["label"]
    assert "1 active" in label  # the panel's title follows without a search


def test_opening_a_result_and_clear_filters_count_against_the_limit(
    handlers: dict[str, list[Callable[..., Any]]],
) -> None:
    search = handlers["search_page"]
    assert len(search) == 7  # the Search button, Enter, the four example queries, and Clear filters' search again
    _, results, *_ = search[-1](*QUERY, request=request(VISITOR))  # Clear filters' search: 1 of 2
    select = handlers["on_select"][0]
    image, text, chosen = select(results, gr.SelectData(None, {"index": 1, "value": None}), request(VISITOR))
    assert image is not None and chosen == results[1]["id"]
    image, text, chosen = select(results, gr.SelectData(None, {"index": 1, "value": None}), request(VISITOR))
    assert image is None and chosen is None and "Too many searches" in text
    assert "Too many searches" in search[-1](*QUERY, request=request(VISITOR))[3]
