"""The Search tab: photo and/or description in, gallery of the most similar cars out.

Layout and wiring only; the logic is in :mod:`carmatch.ui.search_actions` (plain functions).
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr
from PIL import Image

from carmatch.access import RateLimit
from carmatch.bounds import selection_index
from carmatch.catalog import REVIEW_STATES
from carmatch.catalog.schema import FILTER_ATTRIBUTES
from carmatch.errors import BusyError, CarmatchError
from carmatch.runtime import Runtime
from carmatch.ui import frame_view, search_links
from carmatch.ui import search_actions as actions
from carmatch.ui.common import client_address, photo_input, user_errors
from carmatch.ui.phrasing import FIELD_LABELS, as_text, for_browser
from carmatch.ui.search_scripts import (
    AFTER_SEARCH_JS,
    BACK_TO_TILE_JS,
    BUSY_JS,
    PASTE_PHOTO_JS,
    SCROLL_TO_DETAIL,
    TRACK_TAPS_JS,
)

ANY = actions.ANY
NOTHING_SELECTED = "Select a result to see it large here."
ENTER_HINT = "Enter searches · Shift+Enter adds a line"
DEFAULT_EXAMPLES = ("red pickup truck", "white van", "blue sedan", "black suv")


MODEL_POLL_SECONDS = 10.0  # how often an open Search tab checks whether another model was activated
DEMO_POLL_SECONDS = 5.0  # how often an open Search tab shows the progress of a demo import


def example_queries(runtime: Runtime, n: int = 4) -> list[str]:
    """Descriptions a first visitor can click: the collection's commonest colours and body types, else defaults."""
    try:
        colors = [value for value, _ in runtime.catalog.value_counts("color")[:2]]
        bodies = [value for value, _ in runtime.catalog.value_counts("body_type")[:2]]
    except CarmatchError:
        colors, bodies = [], []
    found = [f"{color} {body}" for color in colors for body in bodies]
    return (found + [e for e in DEFAULT_EXAMPLES if e not in found])[:n]


def _query_column(examples: list[str]) -> tuple[Any, ...]:
    """The query side: photo, description, Search button, example queries, then sliders and filters."""
    image_in = photo_input(
        sources=["upload", "webcam", "clipboard"],
        label="Photo of a car (drop, paste or take one)",
        height=220,
        elem_id="search-photo",
    )
    text_in = gr.Textbox(
        label=FIELD_LABELS["text"],
        info=ENTER_HINT,  # visible text, not only a placeholder that disappears when typing starts
        placeholder="dark blue hatchback with a roof rack",
        lines=1,
        max_lines=4,
        max_length=2000,
        elem_id="search-text",
    )
    search_btn = gr.Button("Search", variant="primary", elem_id="search-button")
    with gr.Row(elem_id="example-queries"):
        chips = [
            gr.Button(example, size="sm", variant="secondary", min_width=60, elem_classes=["example-chip"])
            for example in examples
        ]
    with gr.Row():
        k_in = gr.Slider(1, 48, value=12, step=1, label=FIELD_LABELS["k"])
        weight_in = gr.Slider(
            0.0, 1.0, value=0.5, step=0.05, label=f"{FIELD_LABELS['image_weight']} (when both are given)"
        )
    with gr.Accordion(actions.filters_label({}), open=False, elem_id="search-filters") as panel:
        filters = {
            key: gr.Dropdown([ANY], value=ANY, label=key.replace("_", " "), allow_custom_value=True)
            for key in FILTER_ATTRIBUTES
        }
    # kept for /search API clients (its last parameter); the public tab offers no review-state filter
    state_in = gr.Dropdown([ANY, *REVIEW_STATES], value=ANY, label="review state", visible=False)
    return image_in, text_in, k_in, weight_in, panel, filters, state_in, search_btn, chips


def _results_column() -> dict[str, Any]:
    """The answer side: notes (and errors), Clear filters, the gallery, the selected result, JSON."""
    ui: dict[str, Any] = {"notes": gr.Markdown(elem_id="search-notes")}
    ui["clear"] = gr.Button("Clear filters", size="sm", visible=False, elem_id="clear-filters")
    ui["gallery"] = gr.Gallery(  # an answer, not an input: no upload, clear or delete controls
        label="Matches",
        columns=4,
        height=600,
        allow_preview=False,
        object_fit="contain",
        interactive=False,
        elem_id="results",
    )
    with gr.Row(elem_id="result-detail"):
        ui["big"] = gr.Image(label="Selected", interactive=False, height=320, elem_id="selected-photo")
        with gr.Column():
            ui["caption"] = gr.Markdown(NOTHING_SELECTED, elem_id="selected-caption")
            ui["similar"] = gr.Button("Find similar (search with this photo)", elem_id="find-similar")
            ui["back"] = gr.Button("↑ Back to results", size="sm", elem_id="back-to-results")
    ui.update(frame_view.layout())  # a car cut from a traffic frame: its whole frame, the car outlined
    with gr.Accordion("Results as JSON", open=False):
        ui["json"] = gr.JSON(label="results")
    return ui


def build(demo: gr.Blocks, runtime: Runtime, searches: RateLimit) -> None:
    """Lay out the Search tab inside the current gr.Blocks context and wire its events (``searches``: per client)."""
    status = gr.Markdown("Loading the model…", elem_id="search-status")
    with gr.Row():
        with gr.Column(scale=1):
            image_in, text_in, k_in, weight_in, panel, filters, state_in, search_btn, chips = _query_column(
                example_queries(runtime)
            )
            which_car = frame_view.which_car_layout()  # a traffic frame as query: which of its cars
        with gr.Column(scale=2):
            ui = _results_column()
    results_state = gr.State([])
    api_trigger = gr.Button(visible=False)  # carries the /search API (errors raised to the client)

    @user_errors
    def on_search(  # the /search API: parameter names and order stay as clients call them
        text: str,
        image: str | None,
        k: float,
        weight: float,
        color: str,
        body: str,
        make: str,
        view: str,
        state: str,
        request: gr.Request | None = None,
    ) -> tuple[list[tuple[str | Image.Image, str]], list[dict[str, Any]], list[dict[str, Any]], str]:
        if request is not None:
            searches.check(client_address(request))
        where = actions.build_where(color, body, make, view, state)  # one value per actions.WHERE_INPUTS
        items, results, note = actions.search(runtime, text, image, k, weight, where)
        return items, results, results, note

    on_search.__doc__ = actions.SEARCH_API_DOC  # what the API page and the MCP tool say it does

    inputs = [text_in, image_in, k_in, weight_in, *filters.values(), state_in]
    outputs = [ui["gallery"], ui["json"], results_state, ui["notes"]]
    # the Search tab's own event: callable by Gradio clients as /search, but no MCP tool (see agent_api)
    api_trigger.click(on_search, inputs, outputs, api_name="search", api_visibility="undocumented")
    ui.update(inputs=inputs, outputs=outputs, results=results_state, search=search_btn, text=text_in, photo=image_in)
    ui["weight"] = weight_in
    ui["url_inputs"] = [text_in, *filters.values()]  # what a shareable link carries
    ui["chips"] = chips
    in_page = _wire_page(runtime, ui, on_search, searches)
    ui.update(which_car, choose_car_first=lambda photo: frame_view.holds_several_cars(runtime, photo))
    frame_view.wire_frame(runtime, ui)
    frame_view.wire_which_car(runtime, ui)
    _wire_filters(ui, panel, filters, state_in, in_page, searches)
    search_links.wire(demo, ui, filters, ui["live"], lambda: actions.latest_cars(runtime))

    def on_load() -> tuple[Any, ...]:
        text, choices = actions.first_load(runtime)
        return (text, *[gr.update(choices=choices[key]) for key in FILTER_ATTRIBUTES])

    demo.load(on_load, None, [status, *filters.values()], api_visibility="private")
    demo.load(None, js=TRACK_TAPS_JS)
    demo.load(None, js=PASTE_PHOTO_JS)
    _wire_model_watch(demo, runtime, status)
    _wire_demo_watch(runtime, status)


def _wire_model_watch(demo: gr.Blocks, runtime: Runtime, status: gr.Markdown) -> None:
    """An open page learns, without a reload, that another model was activated (status line says so)."""
    shown = gr.State(None)
    demo.load(lambda: actions.model_key(runtime), None, [shown], api_visibility="private")

    def on_tick(seen: str | None) -> tuple[Any, str]:
        text, current = actions.model_change_note(runtime, seen)
        return (gr.update() if text is None else text), current

    timer = gr.Timer(MODEL_POLL_SECONDS)
    timer.tick(on_tick, [shown], [status, shown], api_visibility="private", show_progress="hidden")


def _wire_demo_watch(runtime: Runtime, status: gr.Markdown) -> None:
    """While a Space's first start imports the demo collection, the status line follows its progress."""
    was_running = gr.State(False)

    def on_tick(running: bool) -> tuple[Any, bool]:
        text, now = actions.demo_progress_status(runtime, running)
        return (gr.update() if text is None else text), now

    timer = gr.Timer(DEMO_POLL_SECONDS)
    timer.tick(on_tick, [was_running], [status, was_running], api_visibility="private", show_progress="hidden")


def over_limit(searches: RateLimit, request: gr.Request | None) -> str | None:
    """Count a Search-tab call (find similar, a result opened, a filter changed) against the visitor's limit.

    None when the call may go ahead, else the notes line saying when to try again.
    """
    if request is None:  # not a browser event (every Gradio event hands in its request)
        return None
    try:
        searches.check(client_address(request))
    except BusyError as exc:
        return f"⚠️ {as_text(for_browser(exc))}"
    return None


def page_search(in_page: Any) -> Any:
    """The Search button's handler: ``in_page`` given the visitor's request, so the per-client limit applies."""

    def search_page(  # the Search inputs, in order
        text: str,
        image: str | None,
        k: float,
        weight: float,
        color: str,
        body: str,
        make: str,
        view: str,
        state: str,
        request: gr.Request | None = None,
    ) -> tuple[Any, ...]:
        return in_page(text, image, k, weight, color, body, make, view, state, request=request)

    return search_page


def _wire_page(runtime: Runtime, ui: dict[str, Any], on_search: Any, searches: RateLimit) -> Any:
    """Search (button, Enter, Find similar) into the page and show the selected result; returns the page search.

    The selection is the image shown in the Selected panel, kept by its id: every new search clears both,
    so Find similar always searches with the car on screen.
    """
    selected = gr.State(None)  # the id of the image in the Selected panel
    ui["selected"] = selected
    ui["page_outputs"] = [*ui["outputs"], ui["clear"], ui["big"], ui["caption"], selected]

    def in_page(*values: Any, request: gr.Request | None = None) -> tuple[Any, ...]:
        """Search for the page: an error replaces the results, in the notes, and stays until the next search."""
        where = actions.build_where(*values[4:])
        try:
            found = on_search(*values, request=request)
        except gr.Error as exc:
            found = ([], [], [], f"⚠️ {as_text(html.unescape(exc.message))}")
        return (*found, gr.update(visible=bool(where)), None, NOTHING_SELECTED, None)

    page = {"api_visibility": "private", "show_progress": "minimal", "show_progress_on": [ui["gallery"]]}
    for trigger in (ui["search"].click, ui["text"].submit):
        searching(trigger, page_search(in_page), ui["inputs"], ui, page)
    for chip in ui["chips"]:  # an example query: into the description box, then searched
        filled = chip.click(lambda text: text, [chip], [ui["text"]], queue=False, api_visibility="private")
        searching(filled.then, page_search(in_page), ui["inputs"], ui, page)

    def on_select(
        results: list[dict[str, Any]], evt: gr.SelectData, request: gr.Request
    ) -> tuple[Image.Image | None, str, str | None]:
        if busy := over_limit(searches, request):  # opening a result reads the photo: limited like a search
            return None, busy, None
        position = selection_index(evt.index, len(results or []))  # a tampered event may send anything
        image, text = actions.detail(results, evt.index, runtime)
        return image, text, results[position]["id"] if position is not None and image is not None else None

    shown = [ui["big"], ui["caption"], selected]
    ui["gallery"].select(on_select, [ui["results"]], shown, api_visibility="private").then(None, js=SCROLL_TO_DETAIL)
    ui["back"].click(None, js=BACK_TO_TILE_JS)  # back to the tapped tile, where the reader left off

    _wire_similar(runtime, ui, in_page, searches, page)
    _wire_live(ui, in_page, page)
    return in_page


def _wire_similar(
    runtime: Runtime, ui: dict[str, Any], in_page: Any, searches: RateLimit, page: dict[str, Any]
) -> None:
    """Find similar: search with the photo in the Selected panel (by its id), never a stale grid position."""
    selected = ui["selected"]

    def on_similar(  # the selected image's id, then the Search inputs in order
        image_id: str | None,
        text: str,
        image: str | None,
        k: float,
        weight: float,
        color: str,
        body: str,
        make: str,
        view: str,
        state: str,
        request: gr.Request | None = None,
    ) -> tuple[Any, ...]:
        """Search with the photo in the Selected panel (description cleared); the photo shows as the query."""
        kept = [gr.update() for _ in range(5)]
        unchanged = [gr.update() for _ in range(4)]
        if busy := over_limit(searches, request):  # counted here once: the search below is not counted again
            return (*kept, busy, *unchanged)
        try:
            path = actions.similar_source(runtime, image_id)
        except CarmatchError as exc:
            return (*kept, f"⚠️ {as_text(for_browser(exc))}", *unchanged)
        return (actions.query_photo(path), "", *in_page("", path, k, weight, color, body, make, view, state))

    similar_outputs = [ui["photo"], ui["text"], *ui["page_outputs"]]
    searching(ui["similar"].click, on_similar, [selected, *ui["inputs"]], ui, page, outputs=similar_outputs)


def searching(
    trigger: Any,
    fn: Any,
    inputs: list[Any],
    ui: dict[str, Any],
    page: dict[str, Any],
    outputs: list[Any] | None = None,
) -> Any:
    """Wire a search into the page (``outputs``: ui's page outputs unless given): the Search button disabled
    and the results dimmed while it runs, then the results in view and the query in the address bar."""
    return (
        trigger(None, js=BUSY_JS)
        .then(fn, inputs, ui["page_outputs"] if outputs is None else outputs, **page)
        .then(
            None,
            ui["url_inputs"],
            js=AFTER_SEARCH_JS,
        )
    )


def _wire_live(ui: dict[str, Any], in_page: Any, page: dict[str, Any]) -> None:
    """A changed photo weight, a dropped or pasted photo: search again at once when there is something to search."""

    def live(*values: Any, request: gr.Request | None = None) -> tuple[Any, ...]:
        text, image = values[0], values[1]
        if not (text and str(text).strip()) and image is None:
            return tuple(gr.update() for _ in ui["page_outputs"])  # nothing to search yet
        if image is not None and ui["choose_car_first"](image):  # a traffic frame: "which car?" comes first
            return tuple(gr.update() for _ in ui["page_outputs"])
        return in_page(*values, request=request)

    live_search = page_search(live)
    live_search.__name__ = "live_search"
    for trigger in (ui["weight"].release, ui["photo"].upload):
        searching(trigger, live_search, ui["inputs"], ui, page)
    ui["live"] = live_search


def _wire_filters(
    ui: dict[str, Any],
    panel: gr.Accordion,
    filters: dict[str, gr.Dropdown],
    state_in: gr.Dropdown,
    in_page: Any,
    searches: RateLimit,
) -> None:
    """A filter a visitor changes searches again at once; the panel's title counts the active filters;
    Clear filters resets them and searches again."""
    dropdowns = list(filters.values())

    def on_filters(  # the filter dropdowns, in actions.WHERE_INPUTS order
        color: str, body: str, make: str, view: str, state: str
    ) -> tuple[Any, Any]:
        where = actions.build_where(color, body, make, view, state)
        return gr.update(label=actions.filters_label(where)), gr.update(visible=bool(where))

    page = {"api_visibility": "private", "show_progress": "minimal", "show_progress_on": [ui["gallery"]]}
    for dropdown in dropdowns:
        dropdown.change(on_filters, [*dropdowns, state_in], [panel, ui["clear"]], api_visibility="private")
        searching(dropdown.input, ui["live"], ui["inputs"], ui, page)  # counted if it searches

    def on_clear() -> tuple[Any, ...]:
        return tuple(gr.update(value=ANY) for _ in dropdowns)

    ui["clear"].click(on_clear, None, dropdowns, api_visibility="private").then(
        page_search(in_page), ui["inputs"], ui["page_outputs"], **page
    )
