"""The Search tab's event logic as plain functions: tests call them with no browser.

Functions return plain data; :mod:`carmatch.ui.search_tab` lays out the tab and wires them.
The library checks the query (empty, number of results, photo weight); errors it raises are
phrased with the tab's labels (:func:`carmatch.ui.phrasing.phrased`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PIL import Image

from carmatch.catalog.schema import FILTER_ATTRIBUTES
from carmatch.errors import CarmatchError
from carmatch.images import load_image
from carmatch.runtime import Runtime
from carmatch.thumbs import placeholder_path, safe_thumbnail
from carmatch.ui.phrasing import for_browser, phrased

log = logging.getLogger(__name__)

ANY = "any"
WHERE_INPUTS = (*FILTER_ATTRIBUTES, "review_state")  # the filter dropdowns, in the tab's order
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


def build_where(*values: str | None) -> dict[str, str]:
    """The filter dropdowns' values (in ``WHERE_INPUTS`` order) as a ``where`` dict; ``any`` and blanks ignored."""
    return {key: value for key, value in zip(WHERE_INPUTS, values) if value and value != ANY}


@phrased
def search(
    runtime: Runtime,
    text: str | None,
    image: Image.Image | str | None,
    k: float,
    image_weight: float,
    where: dict[str, str] | None = None,
) -> tuple[list[tuple[str, str]], list[dict[str, Any]], str]:
    """Run a search; returns gallery items (thumbnail, label), result dicts and notes markdown."""
    text = text if text and text.strip() else None  # a blank box is no description
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
    return {key: [ANY, *runtime.catalog.distinct_values(key)] for key in FILTER_ATTRIBUTES}


def first_load(runtime: Runtime) -> tuple[str, dict[str, list[str]]]:
    """(status markdown, filter choices) for a visitor's first view; a problem is shown, never raised."""
    try:
        text = status_markdown(runtime)
    except CarmatchError as exc:
        text = f"⚠️ {for_browser(exc)}"
    try:
        choices = filter_choices(runtime)
    except CarmatchError:
        choices = {key: [ANY] for key in FILTER_ATTRIBUTES}
    return text, choices
