"""The Search tab: photo and/or description in, gallery of the most similar cars out.

Layout and wiring only; the logic is in :mod:`carmatch.ui.search_actions` (plain functions).
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from PIL import Image

from carmatch.catalog import REVIEW_STATES
from carmatch.catalog.schema import FILTER_ATTRIBUTES
from carmatch.runtime import Runtime
from carmatch.ui import search_actions as actions
from carmatch.ui.common import photo_input, user_errors
from carmatch.ui.phrasing import FIELD_LABELS

ANY = actions.ANY


def _query_column() -> tuple[Any, Any, Any, Any, dict[str, gr.Dropdown], gr.Dropdown, gr.Button]:
    """The query side: photo, description, sliders, filters, Search button."""
    image_in = photo_input(
        sources=["upload", "webcam", "clipboard"],
        label="Photo of a car (drop, paste or take one)",
        height=260,
    )
    text_in = gr.Textbox(
        label=FIELD_LABELS["text"],
        placeholder="dark blue hatchback with a roof rack",
        lines=2,
        max_length=2000,
        elem_id="search-text",
    )
    with gr.Row():
        k_in = gr.Slider(1, 48, value=12, step=1, label=FIELD_LABELS["k"])
        weight_in = gr.Slider(
            0.0, 1.0, value=0.5, step=0.05, label=f"{FIELD_LABELS['image_weight']} (when both are given)"
        )
    with gr.Accordion("Filters", open=False):
        filters = {
            key: gr.Dropdown([ANY], value=ANY, label=key.replace("_", " "), allow_custom_value=True)
            for key in FILTER_ATTRIBUTES
        }
        state_in = gr.Dropdown([ANY, *REVIEW_STATES], value=ANY, label="review state")
    search_btn = gr.Button("Search", variant="primary", elem_id="search-button")
    return image_in, text_in, k_in, weight_in, filters, state_in, search_btn


def build(demo: gr.Blocks, runtime: Runtime) -> None:
    """Lay out the Search tab inside the current gr.Blocks context and wire its events."""
    status = gr.Markdown("Loading the model…", elem_id="search-status")
    with gr.Row():
        with gr.Column(scale=1):
            image_in, text_in, k_in, weight_in, filters, state_in, search_btn = _query_column()
        with gr.Column(scale=2):
            notes = gr.Markdown()
            gallery = gr.Gallery(
                label="Matches", columns=4, height=560, allow_preview=False, object_fit="contain", elem_id="results"
            )
            with gr.Row():
                big = gr.Image(label="Selected", interactive=False, height=320)
                big_caption = gr.Markdown()
            with gr.Accordion("Results as JSON", open=False):
                results_json = gr.JSON(label="results")
    results_state = gr.State([])

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
    ) -> tuple[list[tuple[str, str]], list[dict[str, Any]], list[dict[str, Any]], str]:
        where = actions.build_where(color, body, make, view, state)  # one value per actions.WHERE_INPUTS
        items, results, note = actions.search(runtime, text, image, k, weight, where)
        return items, results, results, note

    inputs = [text_in, image_in, k_in, weight_in, *filters.values(), state_in]
    outputs = [gallery, results_json, results_state, notes]
    search_btn.click(on_search, inputs, outputs, api_name="search")
    text_in.submit(on_search, inputs, outputs, api_visibility="private")

    def on_select(results: list[dict[str, Any]], evt: gr.SelectData) -> tuple[Image.Image | None, str]:
        return actions.detail(results, evt.index if isinstance(evt.index, int) else evt.index[0])

    gallery.select(on_select, [results_state], [big, big_caption], api_visibility="private")

    def on_load() -> tuple[Any, ...]:
        text, choices = actions.first_load(runtime)
        return (text, *[gr.update(choices=choices[key]) for key in FILTER_ATTRIBUTES])

    demo.load(on_load, None, [status, *filters.values()], api_visibility="private")
