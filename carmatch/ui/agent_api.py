"""Search for programs and agents: ``search_cars`` and ``car_filters``, API endpoints and MCP tools.

Plain typed arguments an agent can fill (every one optional but "a description or a photo"), filters checked
against the values the collection holds, a photo as a public URL or base64, and every bad argument answered
with one line saying what to change. The Search tab's own ``/search`` event stays callable for Gradio
clients but is no tool. Both functions count against the caller's search rate limit.
"""

from __future__ import annotations

import json
import logging
from pathlib import PurePath

import gradio as gr

from carmatch.access import RateLimit
from carmatch.catalog.schema import FILTER_ATTRIBUTES
from carmatch.errors import BusyError, CarmatchError, InvalidInputError
from carmatch.runtime import Runtime
from carmatch.search.query_image import query_image_bytes
from carmatch.search.searcher import SearchResult
from carmatch.ui.common import client_address
from carmatch.ui.phrasing import for_browser

log = logging.getLogger(__name__)

ANY = "any"
SHOWN_ATTRIBUTES = ("color", "body_type", "make", "model", "viewpoint")


def checked_where(runtime: Runtime, given: dict[str, str]) -> dict[str, str]:
    """The filters an agent gave, each checked against the values the collection holds ("any" = no filter)."""
    where: dict[str, str] = {}
    for key, raw in given.items():
        value = (raw or "").strip().lower()
        if not value or value == ANY:
            continue
        known = {v.lower(): n for v, n in runtime.catalog.value_counts(key)}
        if value not in known:
            listed = ", ".join(sorted(known)) or "none yet"
            raise InvalidInputError(f"No car has {key} {value!r}; {key} values in the collection: {listed}.")
        where[key] = value
    return where


def search_answer(runtime: Runtime, text: str, image: str, k: int, weight: float, where: dict[str, str]) -> dict:
    """The search as plain data: results best first (file name, score, caption, attributes) and notes."""
    photo = query_image_bytes(image, runtime.settings.max_image_bytes) if image.strip() else None
    response = runtime.search(text=text.strip() or None, image=photo, k=k, image_weight=weight, where=where)
    records = runtime.catalog.get_many([r.id for r in response.results])
    results = []
    for result in response.results:
        record = records.get(result.id)
        attributes = {key: record.attributes.get(key) for key in SHOWN_ATTRIBUTES} if record else {}
        results.append(
            {
                "id": result.id,
                "file": PurePath(result.path).name,
                "score": round(result.score, 4),
                "caption": result.caption,
                **{key: value for key, value in attributes.items() if value},
                **frame_fields(result),
            }
        )
    return {"results": results, "notes": list(response.notes)}


def frame_fields(result: SearchResult) -> dict:
    """A car cut from a traffic frame: the frame's file name and id, the car's box and the detector's score."""
    if result.frame is None:
        return {}
    name = PurePath(result.frame_path).name if result.frame_path else None
    return {"frame": name, "frame_id": result.frame, "box": result.box, "detector_score": result.detector_score}


def one_line(exc: CarmatchError) -> str:
    """The error as one line in the app's words, no server path."""
    return " ".join(line.strip() for line in for_browser(exc).splitlines() if line.strip())


def register(runtime: Runtime, searches: RateLimit) -> None:
    """Add the two endpoints to the Blocks being built (call inside ``with gr.Blocks()``)."""

    def search_cars(
        text: str = "",
        image: str = "",
        k: int = 12,
        weight: float = 0.5,
        color: str = ANY,
        body_type: str = ANY,
        make: str = ANY,
        viewpoint: str = ANY,
        request: gr.Request | None = None,
    ) -> str:
        """Find the cars in this collection that best match a description, a photo, or both.

        Give at least one of text and image. Answers JSON {"results": [...], "notes": [...]}: results best
        first with their similarity score (cosine similarity of CLIP embeddings, higher is closer), caption
        and known attributes. A car cut from a traffic frame also has "frame" (the frame's file), "frame_id",
        "box" ([x0, y0, x1, y1] pixels in the frame) and "detector_score" (0-1).
        Call car_filters first to see which filter values exist.

        Args:
            text: What the car looks like in plain words, e.g. "dark blue hatchback with a roof rack". "" for none.
            image: A photo of a car: a public http(s) URL, a data:image/...;base64 URI, or base64 bytes. "" for none.
            k: How many results, 1 to 200.
            weight: With both text and image, how much the photo counts: 0 (text only) to 1 (photo only).
            color: Only cars of this colour (a value from car_filters), or "any".
            body_type: Only this body type, e.g. "suv" or "sedan" (see car_filters), or "any".
            make: Only this manufacturer (see car_filters), or "any".
            viewpoint: Only photos from this side, e.g. "front" or "rear" (see car_filters), or "any".
        """
        try:
            if request is not None:
                searches.check(client_address(request))
            where = checked_where(
                runtime, {"color": color, "body_type": body_type, "make": make, "viewpoint": viewpoint}
            )
            return json.dumps(search_answer(runtime, text or "", image or "", k, weight, where))
        except (CarmatchError, BusyError) as exc:
            log.info("search_cars: %s", exc)
            raise gr.Error(one_line(exc), print_exception=False) from exc

    def car_filters(request: gr.Request | None = None) -> str:
        """The filter values this collection holds, as JSON {filter: {value: number of cars}}, for search_cars."""
        try:
            if request is not None:
                searches.check(client_address(request))
        except BusyError as exc:
            raise gr.Error(one_line(exc), print_exception=False) from exc
        return json.dumps({key: dict(runtime.catalog.value_counts(key)) for key in FILTER_ATTRIBUTES})

    gr.api(search_cars, api_name="search_cars", concurrency_limit=4)
    gr.api(car_filters, api_name="car_filters")
