"""The Search tab: photo and/or description in, gallery of the most similar cars out."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from carmatch.catalog import REVIEW_STATES
from carmatch.errors import CarmatchError, EmptyCollectionError, InvalidInputError
from carmatch.images import load_image
from carmatch.runtime import Runtime
from carmatch.thumbs import placeholder_path, safe_thumbnail
from carmatch.ui.common import photo_input, user_errors

log = logging.getLogger(__name__)

ANY = "any"
FILTER_FIELDS = ("color", "body_type", "make", "viewpoint")
EMPTY_COLLECTION_HELP = """### Your collection is empty
Add images, then search them here:

```bash
python -m admin ingest /path/to/your/car/photos          # add a folder (recursively)
python -m admin ingest photos/ --captions captions.csv   # ...with captions (columns file,caption)
```
Admins can also upload images in the **Dataset** tab."""


def status_markdown(runtime: Runtime) -> str:
    """What a visitor needs to know before searching: problems and how to fix them."""
    info = runtime.info(load_model=True)
    lines: list[str] = []
    if info["images"] == 0:
        lines.append(EMPTY_COLLECTION_HELP)
    else:
        size = info["index_size"] if info["index_size"] is not None else "no"
        lines.append(
            f"**{info['images']} images** · index: {size} vectors · model `{info['model']}` "
            f"(`{info['pretrained']}`, run: {info['active_run']}) on {info['device']}"
        )
    for problem in info["problems"]:
        if info["images"] == 0 and "collection is empty" in problem:
            continue
        lines.append(f"⚠️ {problem}")
    return "\n\n".join(lines)


def build_where(
    color: str | None = None,
    body_type: str | None = None,
    make: str | None = None,
    viewpoint: str | None = None,
    review_state: str | None = None,
) -> dict[str, str]:
    """Filters chosen in the UI as a ``where`` dict (``any`` and blanks ignored)."""
    chosen = {
        "color": color,
        "body_type": body_type,
        "make": make,
        "viewpoint": viewpoint,
        "review_state": review_state,
    }
    return {k: v for k, v in chosen.items() if v and v != ANY}


def search(
    runtime: Runtime,
    text: str | None,
    image: Image.Image | str | None,
    k: float,
    image_weight: float,
    where: dict[str, str] | None = None,
) -> tuple[list[tuple[str, str]], list[dict[str, Any]], str]:
    """Run a search; returns gallery items (thumbnail, label), result dicts and notes markdown."""
    text = text if text and text.strip() else None
    if text is None and image is None:
        raise InvalidInputError("Type a description or drop in a photo of a car, then search.")
    response = runtime.search(text=text, image=image, k=int(k), image_weight=float(image_weight), where=where)
    gallery: list[tuple[str, str]] = []
    results: list[dict[str, Any]] = []
    for result in response.results:
        thumb = safe_thumbnail(runtime.settings.thumbs_dir, result.id, result.path)
        item = result.to_dict()
        # "file", not "path": gradio_client would take any dict with a "path" key for a file to download
        item["file"] = item.pop("path")
        results.append(item)
        label = f"{result.score:.3f} · {result.caption or Path(result.path).name}"
        gallery.append((str(thumb) if thumb else str(placeholder_path(runtime.settings.thumbs_dir)), label))
    notes = list(response.notes)
    if not results:
        notes.append("No matches.")
    return gallery, results, "\n\n".join(f"ℹ️ {n}" for n in notes)


def detail(results: list[dict[str, Any]], index: int) -> tuple[Image.Image | None, str]:
    """The selected result shown large, with its caption, score and file name."""
    if not results or index is None or not 0 <= index < len(results):
        return None, ""
    item = results[index]
    path = Path(item["file"])
    try:
        image = load_image(path).image
    except CarmatchError as exc:
        return None, f"**{path.name}** could not be opened: {exc}"
    caption = item.get("caption") or "_no caption yet_"
    return image, f"**{path.name}** · score {item['score']:.3f}\n\n{caption}\n\n`{path}`  \nid `{item['id'][:16]}`"


def filter_choices(runtime: Runtime) -> dict[str, list[str]]:
    """Dropdown choices for each attribute filter, from the catalog."""
    return {field: [ANY, *runtime.catalog.distinct_values(field)] for field in FILTER_FIELDS}


def build(demo: gr.Blocks, runtime: Runtime) -> None:
    """Lay out the Search tab inside the current gr.Blocks context and wire its events."""
    status = gr.Markdown("Loading the model…", elem_id="search-status")
    with gr.Row():
        with gr.Column(scale=1):
            image_in = photo_input(
                sources=["upload", "webcam", "clipboard"],
                label="Photo of a car (drop, paste or take one)",
                height=260,
            )
            text_in = gr.Textbox(
                label="Description",
                placeholder="dark blue hatchback with a roof rack",
                lines=2,
                max_length=2000,
                elem_id="search-text",
            )
            with gr.Row():
                k_in = gr.Slider(1, 48, value=12, step=1, label="Results")
                weight_in = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Photo weight (when both are given)")
            with gr.Accordion("Filters", open=False):
                filters = {
                    name: gr.Dropdown([ANY], value=ANY, label=name.replace("_", " "), allow_custom_value=True)
                    for name in FILTER_FIELDS
                }
                state_in = gr.Dropdown([ANY, *REVIEW_STATES], value=ANY, label="review state")
            search_btn = gr.Button("Search", variant="primary", elem_id="search-button")
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
    def on_search(
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
        where = build_where(color, body, make, view, state)
        items, results, note = search(runtime, text, image, k, weight, where)
        return items, results, results, note

    inputs = [text_in, image_in, k_in, weight_in, *filters.values(), state_in]
    outputs = [gallery, results_json, results_state, notes]
    search_btn.click(on_search, inputs, outputs, api_name="search")
    text_in.submit(on_search, inputs, outputs, api_visibility="private")

    def on_select(results: list[dict[str, Any]], evt: gr.SelectData) -> tuple[Image.Image | None, str]:
        return detail(results, evt.index if isinstance(evt.index, int) else evt.index[0])

    gallery.select(on_select, [results_state], [big, big_caption], api_visibility="private")

    def on_load() -> tuple[Any, ...]:
        try:
            text = status_markdown(runtime)
        except CarmatchError as exc:
            text = f"⚠️ {exc}"
        try:
            choices = filter_choices(runtime)
        except (CarmatchError, EmptyCollectionError):
            choices = {name: [ANY] for name in FILTER_FIELDS}
        return (text, *[gr.update(choices=choices[name]) for name in FILTER_FIELDS])

    demo.load(on_load, None, [status, *filters.values()], api_visibility="private")
