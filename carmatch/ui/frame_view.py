"""Traffic frames in the Search tab: a car's whole frame with its box drawn, and "which car?" for a frame as query.

A result that is a car cut from a traffic frame opens, below the selected photo, the whole frame with that
car outlined boldly and the frame's other cars faintly (:mod:`carmatch.outlines`). A query photo in which
the detector (``CARMATCH_DETECTOR``) finds several cars offers them as choices; picking one searches with
that car alone. ``layout`` and ``wire_*`` lay out and wire (called from ``search_tab``); the rest are plain
functions tests call without a browser.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from carmatch.bounds import selection_index
from carmatch.dataset.frames import delete_frames
from carmatch.errors import CarmatchError, InvalidInputError
from carmatch.images import load_image
from carmatch.ingest.detector import Detector, DetectorSettings, detector_settings, load_detector
from carmatch.outlines import outline
from carmatch.runtime import Runtime
from carmatch.ui.common import user_errors
from carmatch.ui.dataset_actions import require_admin
from carmatch.ui.phrasing import as_text, for_browser

log = logging.getLogger(__name__)

FRAME_SHOWN_SIDE_PX = 1600  # a 4K frame is shown (and drawn on) at this size
_detectors: dict[DetectorSettings, Detector] = {}
_detectors_lock = threading.Lock()
_asked: dict[tuple[str, DetectorSettings], list[tuple[str, str]]] = {}  # the last query photo's cars


# -- the frame of a result ---------------------------------------------------------------------
def frame_detail(runtime: Runtime, results: list[dict[str, Any]], index: Any) -> tuple[Image.Image | None, str]:
    """The whole frame of the selected result with its box drawn (None, "" when the result is no crop)."""
    position = selection_index(index, len(results or []))
    if position is None:
        return None, ""
    return frame_of(runtime, str(results[position].get("id", "")))


def frame_of(runtime: Runtime, image_id: str | None) -> tuple[Image.Image | None, str]:
    """The whole frame of a car cut from one, its box drawn, and a line about it (None, "" for any other image)."""
    link = runtime.catalog.crop_links([image_id]).get(image_id) if image_id else None
    if link is None or runtime.catalog.frame_state(link.frame_id) != "live":
        return None, ""
    try:
        frame = runtime.catalog.get_frame(link.frame_id)
        image = load_image(Path(frame.path), runtime.settings.max_image_pixels, runtime.settings.max_image_bytes).image
    except CarmatchError as exc:
        return None, f"The frame of this car could not be opened: {as_text(for_browser(exc))}"
    return drawn_frame(image, link.box, [c.box for c in frame.crops]), frame_note(link, frame)


def drawn_frame(
    image: Image.Image, box: tuple[int, int, int, int], others: list[tuple[int, int, int, int]]
) -> Image.Image:
    """The frame at most FRAME_SHOWN_SIDE_PX a side, the car outlined boldly, the other cars faintly."""
    scale = min(1.0, FRAME_SHOWN_SIDE_PX / max(image.size))
    shown = image if scale == 1.0 else image.resize((round(image.width * scale), round(image.height * scale)))
    return outline(shown, box, others, scale=scale)


def frame_note(link: Any, frame: Any) -> str:
    """What the frame view says: which car of how many, in which file, found how surely by what."""
    boxes = [c.box for c in frame.crops]
    number = boxes.index(link.box) + 1 if link.box in boxes else "?"
    name = as_text(Path(frame.path).name)
    finder = as_text(str(link.detector).split("/")[0])
    return (
        f"Car {number} of {len(boxes)} in **{name}** (outlined in red; the others faintly) · "
        f"box {list(link.box)} · {finder} score {link.score:.2f}"
    )


def delete_frame_of(runtime: Runtime, session_password: str | None, image_id: str | None) -> str:
    """Delete the frame a car was cut from, with all its cars (admin only); the report's summary."""
    require_admin(runtime, session_password)
    link = runtime.catalog.crop_links([image_id]).get(image_id) if image_id else None
    if link is None:
        raise InvalidInputError("The selected image was not cut from a traffic frame: there is no frame to delete.")
    report = delete_frames(runtime.catalog, runtime.store, [link.frame_id], thumbs_dir=runtime.settings.thumbs_dir)
    return report.summary() + "\n\nRefresh the grid to see the collection without them."


# -- which car? --------------------------------------------------------------------------------
def query_cars(runtime: Runtime, photo: str | None) -> list[tuple[str, str]]:
    """The cars the detector finds in a query photo, as (label, "x0,y0,x1,y1") choices; [] for one car or none.

    The last photo's answer is kept, so the upload's two listeners run the detector once.

    Nothing when no detector is set (CARMATCH_DETECTOR=none) or its weights cannot be loaded (logged).
    """
    chosen = detector_settings(runtime.settings)
    if chosen is None or not photo:
        return []
    with _detectors_lock:  # the upload's two listeners (choices, live search) ask at once: detect once
        if (str(photo), chosen) not in _asked:
            _asked.clear()  # the last photo only
            _asked[(str(photo), chosen)] = _detect_cars(runtime, chosen, str(photo))
        return list(_asked[(str(photo), chosen)])


def holds_several_cars(runtime: Runtime, photo: str | None) -> bool:
    """True when the query photo is a traffic frame with several cars: the search waits for "which car?"."""
    return bool(query_cars(runtime, photo))


def _detect_cars(runtime: Runtime, chosen: DetectorSettings, photo: str) -> list[tuple[str, str]]:
    try:
        detector = _detector(chosen)
        image = load_image(Path(photo), runtime.settings.max_image_pixels, runtime.settings.max_image_bytes).image
    except CarmatchError as exc:
        log.warning("No 'which car?' for this photo: %s", exc)
        return []
    cars = detector.detect([image])[0]
    if len(cars) < 2:
        return []
    ordered = sorted(cars, key=lambda d: (d.box.x0, d.box.y0))  # left to right, as a person counts them
    return [
        (
            f"Car {n}: {d.label or 'vehicle'} at x {d.box.x0}-{d.box.x1} ({d.score:.0%})",
            ",".join(map(str, d.box.as_tuple())),
        )
        for n, d in enumerate(ordered, 1)
    ]


def chosen_car(photo: str | None, value: str | None) -> Image.Image | None:
    """The chosen car cut out of the query photo (None when the choice is not a box of it)."""
    if not photo or not value:
        return None
    try:
        x0, y0, x1, y1 = (int(v) for v in str(value).split(","))
        image = load_image(Path(photo)).image
    except (ValueError, CarmatchError):
        return None
    if not (0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height):
        return None
    return image.crop((x0, y0, x1, y1))


def _detector(chosen: DetectorSettings) -> Detector:
    if chosen not in _detectors:  # under _detectors_lock (query_cars)
        _detectors[chosen] = load_detector(chosen)
    return _detectors[chosen]


# -- layout and wiring -------------------------------------------------------------------------
def layout() -> dict[str, Any]:
    """The frame view (hidden until a car cut from a frame is selected)."""
    with gr.Column(visible=False, elem_id="frame-view") as column:
        image = gr.Image(label="Whole frame", interactive=False, height=360, elem_id="frame-photo")
        note = gr.Markdown(elem_id="frame-note")
    return {"frame_column": column, "frame": image, "frame_note": note}


def which_car_layout() -> dict[str, Any]:
    """The "which car?" choice under the query photo (hidden until a photo holds several cars)."""
    radio = gr.Radio([], label="Which car? (the photo holds several)", visible=False, elem_id="which-car")
    return {"which_car": radio}


def dataset_frame_panel(runtime: Runtime, current_id: Any, session_password: Any) -> None:
    """The Dataset editor's frame, on demand: show the frame of the selected car; delete the frame with its cars."""
    with gr.Accordion("Traffic frame (cars cut from one)", open=False, elem_id="dataset-frame-panel"):
        show = gr.Button("Show the selected car's frame", size="sm", elem_id="dataset-show-frame")
        image = gr.Image(label="Its frame", interactive=False, height=300, visible=False, elem_id="dataset-frame")
        note = gr.Markdown(elem_id="dataset-frame-note")
        delete = gr.Button(
            "Delete this frame and all its cars", size="sm", variant="stop", elem_id="dataset-delete-frame"
        )

    def on_show(image_id: str | None) -> tuple[Any, str]:
        shown, text = frame_of(runtime, image_id)
        return gr.update(
            value=shown, visible=shown is not None
        ), text or "_The selected image is not cut from a frame._"

    @user_errors
    def on_delete(pw: str | None, image_id: str | None) -> str:
        return delete_frame_of(runtime, pw, image_id)

    show.click(on_show, [current_id], [image, note], api_visibility="private")
    delete.click(on_delete, [session_password, current_id], [note], api_visibility="private")


def wire_frame(runtime: Runtime, ui: dict[str, Any]) -> None:
    """Selecting a result shows its frame when it is a car cut from one; a new search hides it."""

    def on_select(results: list[dict[str, Any]], evt: gr.SelectData) -> tuple[Any, Any, Any]:
        image, note = frame_detail(runtime, results, evt.index)
        return gr.update(visible=image is not None or bool(note)), image, note

    shown = [ui["frame_column"], ui["frame"], ui["frame_note"]]
    ui["gallery"].select(on_select, [ui["results"]], shown, api_visibility="private")
    ui["search"].click(lambda: gr.update(visible=False), None, [ui["frame_column"]], api_visibility="private")


def wire_which_car(runtime: Runtime, ui: dict[str, Any]) -> None:
    """A dropped photo with several cars offers them; a chosen car becomes the query photo, then is searched."""

    def on_photo(photo: str | None) -> Any:
        choices = query_cars(runtime, photo)
        return gr.update(choices=choices, value=None, visible=bool(choices))

    def on_choose(photo: str | None, value: str | None) -> tuple[Any, Any]:
        car = chosen_car(photo, value)
        if car is None:
            return gr.update(), gr.update()
        return car, gr.update(visible=False)

    ui["photo"].upload(on_photo, [ui["photo"]], [ui["which_car"]], api_visibility="private")
    chosen = ui["which_car"].select(
        on_choose, [ui["photo"], ui["which_car"]], [ui["photo"], ui["which_car"]], api_visibility="private"
    )
    chosen.then(ui["live"], ui["inputs"], ui["page_outputs"], api_visibility="private")
