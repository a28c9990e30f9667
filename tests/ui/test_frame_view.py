"""The frame view: a car's whole frame with its box drawn boldly and the frame's other cars faintly; which car?"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from carmatch.errors import AccessDeniedError
from carmatch.ingest.boxes import read_box_file
from carmatch.ingest.frames import FrameIngestor
from carmatch.outlines import CHOSEN_RGB
from carmatch.runtime import Runtime
from carmatch.ui import frame_view, search_actions
from tests.ingest.frame_drawing import FRAMES, ROAD, coco_file, draw_frames
from tests.ui.rendering import shown


@pytest.fixture
def framed(runtime: Runtime, tmp_path: Path) -> Runtime:
    folder = draw_frames(tmp_path / "frames")
    boxes = read_box_file(coco_file(tmp_path / "boxes.json"))
    FrameIngestor(runtime.ingestor(), runtime.settings.crops_dir, box_file=boxes).ingest_folder(folder)
    return runtime


def test_opening_a_car_shows_its_frame_with_its_box_drawn_and_the_others_faint(framed: Runtime) -> None:
    _, results, _ = search_actions.search(framed, "a car", None, 6, 0.5)
    position = next(n for n, r in enumerate(results) if r.get("box") == [150, 30, 246, 94])
    assert results[position]["frame_path"] == "f001.png"  # the file name only: no server path
    image, note = frame_view.frame_detail(framed, results, position)
    assert image is not None and image.size == (320, 200)
    pixels = np.asarray(image, dtype=int)
    assert np.abs(pixels[60, 150] - CHOSEN_RGB).max() < 10  # the chosen car's left edge, bold red
    other = pixels[50, 10]  # the red sedan's left edge at (10, 20)-(106, 84): faint white over the car
    assert not np.abs(other - CHOSEN_RGB).max() < 60 and other.sum() > np.asarray(ROAD).sum()
    assert "Car 3 of 3 in f001.png" in shown(note) and "boxes:boxes.json score 1.00" in shown(note)  # left to right
    whole = next(n for n, r in enumerate(results) if "box" not in r)  # the car-less frame: a plain image
    assert frame_view.frame_detail(framed, results, whole) == (None, "")


def test_which_car_offers_the_cars_of_a_query_frame_and_cuts_the_chosen_one(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = draw_frames(tmp_path / "q") / "cam1" / "f001.png"
    assert frame_view.query_cars(runtime, str(frame)) == []  # no detector set: the photo is searched as it is
    assert not frame_view.holds_several_cars(runtime, str(frame))
    monkeypatch.setattr(runtime, "settings", runtime.settings.with_overrides(detector="tiny-random"))
    choices = frame_view.query_cars(runtime, str(frame))
    assert len(choices) >= 2 and choices[0][0].startswith("Car 1: car at x ")
    assert frame_view.holds_several_cars(runtime, str(frame))  # the live search waits for the choice
    x0, y0, x1, y1 = (int(v) for v in choices[0][1].split(","))
    car = frame_view.chosen_car(str(frame), choices[0][1])
    assert car is not None and car.size == (x1 - x0, y1 - y0)
    assert frame_view.chosen_car(str(frame), "0,0,999,10") is None  # a tampered choice outside the photo
    assert len(FRAMES["cam1/f001.png"]) == 3


def test_dataset_shows_a_cars_frame_on_demand_and_deletes_the_frame_with_its_cars(framed: Runtime) -> None:
    links = framed.catalog.crop_links(framed.catalog.ids())
    car_id, link = next(iter(links.items()))
    image, note = frame_view.frame_of(framed, car_id)
    assert image is not None and "score 1.00" in shown(note)
    with pytest.raises(AccessDeniedError):  # no admin password set: the app is read-only
        frame_view.delete_frame_of(framed, "pw", car_id)
    assert framed.catalog.frame_state(link.frame_id) == "live"
    framed.settings = framed.settings.with_overrides(admin_password="pw")
    cars = framed.catalog.frame_crop_ids([link.frame_id])
    assert "Deleted 1 frame(s)" in frame_view.delete_frame_of(framed, "pw", car_id)
    assert not set(cars) & set(framed.catalog.ids()) and frame_view.frame_of(framed, car_id) == (None, "")


def test_filters_and_find_similar_work_on_cars(framed: Runtime) -> None:
    links = framed.catalog.crop_links(framed.catalog.ids())
    red = next(i for i, link in links.items() if link.box == (10, 20, 106, 84))
    framed.catalog.import_caption(red, "a red sedan", {"color": "red", "body_type": "sedan"})
    _, results, _ = search_actions.search(framed, "a car", None, 6, 0.5, {"color": "red"})
    assert [r["id"] for r in results] == [red] and results[0]["box"] == [10, 20, 106, 84]
    similar = framed.search(image=search_actions.similar_source(framed, red), k=1).results[0]  # Find similar
    assert similar.id == red and similar.frame == links[red].frame_id
