"""Traffic frames: every car its own image, linked to its frame and box; boxes files; the detector path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from admin.cli import main
from carmatch.dataset.frames import delete_frames
from carmatch.dataset.training_set import SplitFractions, split_groups, training_set
from carmatch.errors import ModelLoadError
from carmatch.ingest.boxes import read_box_file
from carmatch.ingest.detector import tiny_detector, weights_file
from carmatch.ingest.frames import FrameIngestor
from carmatch.ingest.uploads import add_uploads
from carmatch.locations import relocate
from carmatch.runtime import Runtime
from carmatch.training.data import catalog_pairs
from tests.ingest.frame_drawing import FRAMES, coco_file, draw_frames

BAD_ROWS = [
    {"image_id": 1, "bbox": [300, 150, 50, 40], "category_id": 3},  # past the right edge
    {"image_id": 2, "bbox": [10, 10, 0, 20], "category_id": 3},  # zero width
    {"image_id": 2, "bbox": "wide", "category_id": 3},  # not four numbers
    {"image_id": 7, "bbox": [1, 1, 5, 5], "category_id": 3},  # no such image in the file
    {"image_id": 1, "bbox": [0, 0, 20, 20], "category_id": 1},  # a person: not a car, ignored
]


def boxes_ingest(runtime: Runtime, folder: Path, boxes: Path) -> FrameIngestor:
    return FrameIngestor(runtime.ingestor(), runtime.settings.crops_dir, box_file=read_box_file(boxes))


@pytest.fixture
def frames(tmp_path: Path) -> tuple[Path, Path]:
    folder = draw_frames(tmp_path / "frames")
    coco = coco_file(tmp_path / "boxes.json", BAD_ROWS)
    data = json.loads(coco.read_text())
    data["images"].append({"id": 9, "file_name": "cam3/gone.png", "width": 320, "height": 200})
    data["annotations"].append({"image_id": 9, "bbox": [1, 1, 30, 30], "category_id": 3})
    coco.write_text(json.dumps(data))
    return folder, coco


def test_boxes_file_makes_each_car_an_image_linked_to_its_frame(runtime: Runtime, frames: tuple[Path, Path]) -> None:
    folder, coco = frames
    report = boxes_ingest(runtime, folder, coco).ingest_folder(folder)
    assert (report.frames, report.with_cars, report.crops, report.whole) == (3, 2, 5, 1)
    catalog = runtime.catalog
    assert catalog.count() == 6 and len(runtime.index()) == 6  # 5 cars + the car-less frame, whole
    links = catalog.crop_links(catalog.ids())
    assert len(links) == 5
    for name, cars in FRAMES.items():
        frame_image = Image.open(folder / name).convert("RGB")
        for _, _, box in cars:
            link = next(
                lk
                for lk in links.values()
                if lk.box == box and Path(catalog.get_frame(lk.frame_id).path).name == Path(name).name
            )
            assert link.detector == "boxes:boxes.json" and link.score == 1.0
            crop = catalog.get(link.image_id)
            assert (crop.width, crop.height) == (box[2] - box[0], box[3] - box[1])
            pixels = np.asarray(Image.open(crop.path).convert("RGB"), dtype=float)
            expected = np.asarray(frame_image.crop(box), dtype=float)
            assert np.abs(pixels - expected).mean() < 6  # the frame's pixels (JPEG-close)
    whole = [i for i in catalog.ids() if i not in links]
    assert Path(catalog.get(whole[0]).path).name == "empty.png"
    reasons = dict(report.refused)
    assert "outside the 320x200 image" in reasons["cam1/f001.png box 4"]
    assert "zero size" in reasons["cam2/f002.png box 3"]
    assert "four numbers" in reasons["annotations[7]"]
    assert "unknown image_id" in reasons["annotations[8]"]
    assert "unknown file" in reasons["cam3/gone"]
    assert len(report.refused) == 5  # the person is no car and no mistake


def test_a_second_run_cuts_nothing_again_and_a_deleted_frame_takes_its_cars(
    runtime: Runtime, frames: tuple[Path, Path]
) -> None:
    folder, coco = frames
    boxes_ingest(runtime, folder, coco).ingest_folder(folder)
    again = boxes_ingest(runtime, folder, coco).ingest_folder(folder)
    assert (again.known, again.crops, again.ingest.added, again.ingest.embedded) == (2, 0, 0, 0)
    frame_id = next(iter(runtime.catalog.crop_links(runtime.catalog.ids()).values())).frame_id
    cars = runtime.catalog.frame_crop_ids([frame_id])
    report = delete_frames(runtime.catalog, runtime.store, [frame_id])
    assert report.changed == len(cars) and runtime.catalog.frame_state(frame_id) == "deleted"
    assert not set(cars) & set(runtime.catalog.ids()) and not set(cars) & set(runtime.index().ids)
    after = boxes_ingest(runtime, folder, coco).ingest_folder(folder)
    assert after.deleted == 1 and not set(cars) & set(runtime.catalog.ids())


def test_search_results_carry_frame_and_box(runtime: Runtime, frames: tuple[Path, Path], capsys) -> None:
    folder, coco = frames
    boxes_ingest(runtime, folder, coco).ingest_folder(folder)
    links = runtime.catalog.crop_links(runtime.catalog.ids())
    car_id, link = next(iter(links.items()))
    top = runtime.search(image=runtime.catalog.get(car_id).path, k=3).results[0]
    assert top.id == car_id and top.frame == link.frame_id and top.box == list(link.box)
    assert top.frame_path == runtime.catalog.get_frame(link.frame_id).path and top.detector_score == 1.0
    runtime.close()
    assert main(["search", "a red car", "--k", "6", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    cars = [r for r in printed if r["frame"]]
    assert len(cars) == 5 and all(len(r["box"]) == 4 and r["frame_path"].endswith(".png") for r in cars)
    assert [r for r in printed if not r["frame"]][0]["box"] is None  # the whole car-less frame


def test_all_cars_of_a_frame_share_its_split(runtime: Runtime, frames: tuple[Path, Path]) -> None:
    folder, coco = frames
    boxes_ingest(runtime, folder, coco).ingest_folder(folder)
    thirds = SplitFractions(0.33, 0.33)  # a crop hashed on its own would land anywhere
    chosen = training_set(runtime.catalog, fractions=thirds)
    groups = split_groups(runtime.catalog)
    by_frame: dict[str, set[tuple[str, str]]] = {}
    for crop_id, frame_id in runtime.catalog.crop_frames().items():
        by_frame.setdefault(frame_id, set()).add((groups.get(crop_id, crop_id), chosen.split(crop_id)))
    assert len(by_frame) == 2 and all(len(keys) == 1 for keys in by_frame.values())


def test_yolo_labels_are_read_and_bad_rows_refused(runtime: Runtime, tmp_path: Path) -> None:
    folder = draw_frames(tmp_path / "frames")
    labels = tmp_path / "labels"
    (labels / "cam1").mkdir(parents=True)
    rows = ["2 0.18 0.26 0.3 0.32", "2 0.95 0.5 0.2 0.2", "2 0.5 0.5 0 0.1", "2 a b c d", "7 0.5 0.77 0.3 0.32 0.8"]
    (labels / "cam1" / "f001.txt").write_text("\n".join(rows) + "\n")
    report = boxes_ingest(runtime, folder, labels).ingest_folder(folder)
    assert (report.with_cars, report.crops, report.whole) == (1, 2, 2)
    reasons = dict(report.refused)
    assert "outside the image" in reasons["f001.txt:2"] and "zero size" in reasons["f001.txt:3"]
    assert "class cx cy w h" in reasons["f001.txt:4"]
    boxes = sorted(link.box for link in runtime.catalog.crop_links(runtime.catalog.ids()).values())
    assert boxes[0] == (10, 20, 106, 84)  # 0.18*320 -+ 0.15*320, 0.26*200 -+ 0.16*200
    scores = sorted(link.score for link in runtime.catalog.crop_links(runtime.catalog.ids()).values())
    assert scores == [0.8, 1.0]


def test_detector_path_end_to_end_with_a_tiny_random_detector(runtime: Runtime, tmp_path: Path) -> None:
    folder = draw_frames(tmp_path / "frames")
    detector = tiny_detector(min_score=0.3, min_side=8)
    report = FrameIngestor(runtime.ingestor(), runtime.settings.crops_dir, detector=detector).ingest_folder(folder)
    assert report.with_cars == 3 and report.crops > 3  # random weights: boxes anywhere, but many
    links = runtime.catalog.crop_links(runtime.catalog.ids())
    assert len(links) == report.crops and len(runtime.index()) == report.crops
    for link in links.values():
        x0, y0, x1, y1 = link.box
        assert 0 <= x0 < x1 <= 320 and 0 <= y0 < y1 <= 200 and min(x1 - x0, y1 - y0) >= 8
        assert link.detector == "tiny-random" and link.score >= 0.3 and link.label == "car"
        crop = runtime.catalog.get(link.image_id)
        assert (crop.width, crop.height) == (x1 - x0, y1 - y0)


def test_missing_detector_weights_fail_fast_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = "https://download.pytorch.org/models/fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth"
    with pytest.raises(ModelLoadError, match="downloads are off") as caught:
        weights_file("fasterrcnn_mobilenet_v3_large_fpn", url, offline=True)
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth") in str(
        caught.value
    )


def test_cli_ingests_frames_with_a_boxes_file_or_the_detector_setting(
    settings: object, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = draw_frames(tmp_path / "frames")
    coco = coco_file(tmp_path / "boxes.json", BAD_ROWS[:1])
    assert main(["ingest", str(folder), "--cars", "--boxes", str(coco)]) == 1
    assert "not both" in capsys.readouterr().err
    assert main(["ingest", str(folder), "--boxes", str(coco)]) == 0
    out = capsys.readouterr().out
    assert "2 with cars (5 car(s) cut out), 1 without a car" in out and "outside the 320x200 image" in out
    monkeypatch.setenv("CARMATCH_DETECTOR", "tiny-random")
    more = draw_frames(tmp_path / "more" / "again")  # the same frames: known, nothing cut twice
    assert main(["ingest", str(more.parent)]) == 0
    assert "2 cut earlier" in capsys.readouterr().out


def test_uploaded_frames_are_cut_into_cars_and_kept(runtime: Runtime, tmp_path: Path) -> None:
    folder = draw_frames(tmp_path / "frames")
    runtime.settings = runtime.settings.with_overrides(detector="tiny-random", detector_min_side=8)
    uploads = [folder / "cam1" / "f001.png", folder / "cam2" / "f002.png"]
    report = add_uploads(runtime, uploads, cars=True)
    assert report.frames.with_cars == 2 and report.removed_duplicates == 0
    assert "2 with cars" in report.summary()
    frames = {link.frame_id for link in runtime.catalog.crop_links(runtime.catalog.ids()).values()}
    for frame_id in frames:  # the uploaded frame files stay: the frame view opens them
        path = Path(runtime.catalog.get_frame(frame_id).path)
        assert path.is_file() and path.is_relative_to(runtime.settings.uploads_dir.resolve())


def test_fine_tuning_pairs_are_crops_with_their_captions(runtime: Runtime, frames: tuple[Path, Path]) -> None:
    folder, coco = frames
    boxes_ingest(runtime, folder, coco).ingest_folder(folder)
    links = runtime.catalog.crop_links(runtime.catalog.ids())
    for n, crop_id in enumerate(links):
        assert runtime.catalog.import_caption(crop_id, f"a drawn car number {n}")
    pairs, _ = catalog_pairs(runtime.catalog)
    assert {p.image_id for p in pairs} == set(links)
    assert all(Path(p.path).is_relative_to(runtime.settings.crops_dir) and Path(p.path).is_file() for p in pairs)


def test_relocating_the_folder_moves_its_frames_too(runtime: Runtime, frames: tuple[Path, Path]) -> None:
    folder, coco = frames
    boxes_ingest(runtime, folder, coco).ingest_folder(folder)
    moved = folder.parent / "moved"
    folder.rename(moved)
    relocate(runtime.catalog, str(folder), moved)
    frame_id = next(iter(runtime.catalog.crop_links(runtime.catalog.ids()).values())).frame_id
    frame = runtime.catalog.get_frame(frame_id)
    assert Path(frame.path).is_file() and frame.root == str(moved)


def test_a_coco_file_naming_images_by_absolute_path_still_matches(tmp_path: Path) -> None:
    coco = coco_file(tmp_path / "boxes.json")
    data = json.loads(coco.read_text())
    data["images"][0]["file_name"] = "/mnt/cameras/cam1/f001.png"  # written on another machine
    coco.write_text(json.dumps(data))
    boxes, refused = read_box_file(coco).for_image("cam1/f001.png", 320, 200)
    assert [d.box.as_tuple() for d in boxes] == [box for _, _, box in FRAMES["cam1/f001.png"]] and refused == []


def test_cars_without_detector_weights_offline_stop_before_changing_anything(
    settings: object, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = draw_frames(tmp_path / "frames")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("CARMATCH_OFFLINE", "1")
    assert main(["ingest", str(folder), "--cars"]) == 1
    err = capsys.readouterr().err
    assert "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth" in err and "--boxes FILE" in err
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 0
