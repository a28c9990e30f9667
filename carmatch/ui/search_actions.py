"""The Search tab's event logic as plain functions: tests call them with no browser.

Functions return plain data; :mod:`carmatch.ui.search_tab` lays out the tab and wires them.
The library checks the query (empty, number of results, photo weight); errors it raises are
phrased with the tab's labels (:func:`carmatch.ui.phrasing.phrased`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from PIL import Image

from carmatch.bounds import check_selection
from carmatch.catalog.browse import BrowseQuery
from carmatch.catalog.schema import FILTER_ATTRIBUTES
from carmatch.dataset.demo_background import demo_import_of
from carmatch.errors import CarmatchError, InvalidInputError, NotFoundError
from carmatch.images import load_image
from carmatch.runtime import Runtime
from carmatch.ui.phrasing import as_text, for_browser, phrased
from carmatch.ui.public import public_result, scrub_paths
from carmatch.ui.server_status import public_status
from carmatch.ui.thumbnails import gallery_image

log = logging.getLogger(__name__)

ANY = "any"
SCORE_HELP = (
    "Similarity: how close each car is to your query (cosine similarity of CLIP embeddings, -1 to 1; "
    "higher means a closer match). Results are sorted by it."
)
WHERE_INPUTS = (*FILTER_ATTRIBUTES, "review_state")
BROWSE_COUNT = 12  # cars shown on a first visit, before any query  # the filter dropdowns, in the tab's order
# The /search endpoint's description: Gradio's API page and the MCP tool an agent sees read it (Args: by name).
SEARCH_API_DOC = """Find the cars in this collection that look most like a photo and/or match a description.

Searches a collection of car photos with CLIP embeddings. Give a description, a photo, or both
(then photo_weight blends them). Results come best first, each with a similarity score, the image's
file name, its caption and its id.

Args:
    text: What the car looks like in plain words, e.g. "dark blue hatchback with a roof rack". Use "" for none.
    image: A photo of a car to find similar ones (a URL or file), or null for none.
    k: How many results to return, 1 to 48.
    weight: When both text and image are given, how much the photo counts, 0 (text only) to 1 (photo only).
    color: Only cars of this colour, e.g. "red"; "any" for no filter.
    body: Only this body type, e.g. "suv", "sedan", "pickup"; "any" for no filter.
    make: Only this manufacturer, e.g. "tesla"; "any" for no filter.
    view: Only this viewpoint, e.g. "front", "side", "rear"; "any" for no filter.
    state: Only captions in this review state ("approved", "unreviewed", "rejected"); "any" for all.

Returns:
    A gallery of thumbnails, the results as a list of {id, file, score, caption}, and notes on the search.
"""


def status_markdown(runtime: Runtime) -> str:
    """The Search tab's status line for anyone (see :func:`carmatch.ui.server_status.public_status`)."""
    return public_status(runtime)


def demo_progress_status(runtime: Runtime, was_running: bool) -> tuple[str | None, bool]:
    """(status to show, running) while a background demo import runs, and once when it ends; None: keep the status."""
    job = demo_import_of(runtime)
    running = job is not None and job.running()
    if running or was_running:
        return status_markdown(runtime), running
    return None, False


def build_where(*values: str | None) -> dict[str, str]:
    """The filter dropdowns' values (in ``WHERE_INPUTS`` order) as a ``where`` dict; ``any`` and blanks ignored."""
    return {key: value for key, value in zip(WHERE_INPUTS, values) if value and value != ANY}


@phrased
def search(
    runtime: Runtime,
    text: str | None,
    image: Image.Image | str | None,
    k: Any,  # the slider's number, or whatever a tampered event sends: the library checks both
    image_weight: Any,
    where: dict[str, str] | None = None,
) -> tuple[list[tuple[str | Image.Image, str]], list[dict[str, Any]], str]:
    """Run a search; returns gallery items (thumbnail, label), result dicts and notes markdown."""
    text = text if text and text.strip() else None  # a blank box is no description
    response = runtime.search(text=text, image=image, k=k, image_weight=image_weight, where=where)  # checked there
    gallery: list[tuple[str | Image.Image, str]] = []
    results: list[dict[str, Any]] = []
    records = runtime.catalog.get_many([r.id for r in response.results]) if text else {}
    for result in response.results:
        thumb = gallery_image(runtime.settings.thumbs_dir, result.id, result.path)
        item = result.to_dict()
        # "file", not "path": gradio_client would take any dict with a "path" key for a file to download
        item["file"] = item.pop("path")
        results.append(public_result(item))  # the file name only: visitors never see server paths
        why = matched_words(text, records[result.id].attributes) if result.id in records else []
        reason = f"\nmatches: {', '.join(why)}" if why else ""
        label = f"{result.caption or Path(result.path).name}{reason}\nsimilarity {result.score:.3f}"
        gallery.append((thumb, label))
    notes = list(response.notes)
    if not results:
        notes.append(no_matches_note(where))
    else:
        notes.append(SCORE_HELP)
    return gallery, results, "\n\n".join(f"ℹ️ {n}" for n in notes)


def no_matches_note(where: dict[str, str] | None) -> str:
    """Why a search found nothing: the filters to relax, when there are any."""
    if not where:
        return "No matches."
    chosen = ", ".join(f"{key.replace('_', ' ')} = {as_text(value)}" for key, value in where.items())
    return f"No matches with the filters {chosen}. Relax one of them, or press **Clear filters**."


def filters_label(where: dict[str, str]) -> str:
    """The filter panel's title: how many filters are active and which, so they show while it is closed."""
    if not where:
        return "Filters (none active)"
    chosen = ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in where.items())
    return f"Filters ({len(where)} active: {chosen})"


def detail(results: list[dict[str, Any]], index: Any, runtime: Runtime | None = None) -> tuple[Image.Image | None, str]:
    """The selected result shown large, with its caption, score and file name (read from the catalog by id)."""
    try:
        position = check_selection(index, len(results or []), "result", "The selected result")  # 'a', NaN, 99…
    except InvalidInputError as exc:
        return None, f"⚠️ {as_text(for_browser(exc))}"
    item = results[position]
    record = runtime.catalog.get_many([item["id"]]).get(item["id"]) if runtime is not None else None
    path = Path(record.path if record is not None else item["file"])
    try:
        image = load_image(path).image
    except CarmatchError as exc:
        return None, f"**{as_text(path.name)}** could not be opened: {as_text(scrub_paths(str(exc)))}"
    caption = as_text(item["caption"]) if item.get("caption") else "_no caption yet_"
    score = f" · similarity {item['score']:.3f} (higher = closer match)" if item.get("score") is not None else ""
    return image, f"**{as_text(path.name)}**{score}\n\n{caption}"  # no path, no id prefix: nothing a visitor can use


def similar_source(runtime: Runtime, image_id: str | None) -> str:
    """The file of the image in the Selected panel (by its id), to search with as the next query photo."""
    if not image_id or not isinstance(image_id, str):  # nothing selected, or a tampered event
        raise InvalidInputError("Select a result first, then press Find similar.")
    record = runtime.catalog.get_many([image_id]).get(image_id)
    if record is None:
        raise NotFoundError(f"Image {image_id[:12]} is no longer in the collection.")
    return record.path


def filter_choices(runtime: Runtime) -> dict[str, list[tuple[str, str]]]:
    """Dropdown choices for each attribute filter, from the catalog: values sorted by name, with counts."""
    choices: dict[str, list[tuple[str, str]]] = {}
    for key in FILTER_ATTRIBUTES:
        counted = sorted(runtime.catalog.value_counts(key), key=lambda pair: pair[0].lower())
        choices[key] = [(ANY, ANY), *[(f"{value} ({n})", value) for value, n in counted]]
    return choices


def matched_words(text: str | None, attributes: dict[str, Any]) -> list[str]:
    """The attribute values the catalog knows for a car that the description names: why it matched."""
    words = set(re.findall(r"[a-z0-9]+", (text or "").lower()))
    found = []
    for key in (*FILTER_ATTRIBUTES, "model"):
        value = str(attributes.get(key) or "").lower()
        if value and set(re.findall(r"[a-z0-9]+", value)) <= words:
            found.append(value)
    return found


def latest_cars(
    runtime: Runtime, k: int = BROWSE_COUNT
) -> tuple[list[tuple[str | Image.Image, str]], list[dict[str, Any]], str]:
    """The newest cars of the collection, for a first visit before any query: (gallery items, results, notes).

    Each can be opened and used for Find similar like a search result (it has no score).
    """
    try:
        records = runtime.catalog.page_records(BrowseQuery(), k, 0)
    except CarmatchError:
        return [], [], ""
    items = [
        (gallery_image(runtime.settings.thumbs_dir, r.id, r.path), r.caption or Path(r.path).name) for r in records
    ]
    results = [public_result({"id": r.id, "file": r.path, "score": None, "caption": r.caption}) for r in records]
    notes = f"The {len(items)} newest cars in the collection: type a description or drop a photo to search."
    return items, results, notes if items else ""


def first_load(runtime: Runtime) -> tuple[str, dict[str, list[tuple[str, str]]]]:
    """(status markdown, filter choices) for a visitor's first view; a problem is shown, never raised."""
    try:
        text = status_markdown(runtime)
    except CarmatchError as exc:
        text = f"⚠️ {as_text(for_browser(exc))}"
    try:
        choices = filter_choices(runtime)
    except CarmatchError:
        choices = {key: [(ANY, ANY)] for key in FILTER_ATTRIBUTES}
    return text, choices


def query_photo(path: str) -> Image.Image | None:
    """A result's photo shown in the query box after Find similar (None when it cannot be opened)."""
    try:
        return load_image(Path(path)).image
    except CarmatchError as exc:
        log.info("query photo %s: %s", path, exc)
        return None


def model_key(runtime: Runtime) -> str:
    """Which model answers searches now: a fine-tuned run's id, or ``base``."""
    return runtime.active_model().run_id or "base"


def model_change_note(runtime: Runtime, shown: str | None) -> tuple[str | None, str]:
    """(new status text or None when unchanged, the model key now) for a page showing model ``shown``."""
    current = model_key(runtime)
    if shown is None or current == shown:
        return None, current
    try:
        status = status_markdown(runtime)
    except CarmatchError as exc:
        status = f"⚠️ {as_text(for_browser(exc))}"
    note = f"ℹ️ The search model changed to **{current}** (activated in the Training tab): search again for its results."
    return f"{note}\n\n{status}", current
