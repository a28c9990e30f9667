"""The demo collection: a local car data set read with `datasets`, captioned from its class names."""

from __future__ import annotations

from pathlib import Path

import pytest

from admin.cli import main
from carmatch.dataset import demo
from carmatch.dataset.demo_labels import label_attributes, label_caption
from carmatch.errors import ConflictError, InvalidInputError
from carmatch.runtime import Runtime
from tests.demo_support import image_folder, parquet_folder


def test_class_names_give_caption_and_attributes() -> None:
    assert label_caption("Tesla Model S Sedan 2012") == "a photo of a 2012 Tesla Model S Sedan"
    assert label_attributes("2012 Tesla Model S Sedan") == {
        "make": "Tesla",
        "model": "Model S",
        "year": 2012,
        "body_type": "sedan",
    }
    assert label_attributes("Chevrolet Silverado 1500 Extended Cab 2012") == {
        "make": "Chevrolet",
        "model": "Silverado 1500",
        "year": 2012,
        "body_type": "pickup",
    }
    assert label_attributes("AM General Hummer SUV 2000")["make"] == "AM General"
    assert label_attributes("Bugatti Veyron 16.4 2009") == {"make": "Bugatti", "model": "Veyron 16.4", "year": 2009}


def test_demo_fills_an_empty_collection_with_captioned_searchable_cars(runtime: Runtime, tmp_path: Path) -> None:
    source = image_folder(tmp_path / "cars-ds")
    seen: list[tuple[int, int]] = []
    report = demo.import_demo(runtime, str(source), n=5, progress=lambda d, t, m: seen.append((d, t)))
    assert (report.written, report.added, report.captioned) == (5, 5, 5)
    assert runtime.catalog.count() == 5
    assert seen[-1] == (5, 5)
    records = [runtime.catalog.get(i) for i in runtime.catalog.ids()]
    assert {r.caption_source for r in records} == {"dataset"}
    tesla = [r for r in records if "Tesla" in (r.caption or "")]
    for record in tesla:
        assert record.caption == "a photo of a 2012 Tesla Model S Sedan"
        assert record.attributes["year"] == 2012 and record.attributes["make"] == "Tesla"
    assert runtime.search(text="a car", k=3).results  # indexed as it went


def test_rerunning_adds_nothing_twice_and_more_rows_extend_it(runtime: Runtime, tmp_path: Path) -> None:
    source = str(image_folder(tmp_path / "cars-ds"))
    demo.import_demo(runtime, source, n=4, seed=3)
    first = set(runtime.catalog.ids())
    again = demo.import_demo(runtime, source, n=4, seed=3)
    assert (again.written, again.added, again.captioned) == (0, 0, 0)
    assert set(runtime.catalog.ids()) == first
    more = demo.import_demo(runtime, source, n=7, seed=3)
    assert (more.on_disk, more.written, more.added) == (4, 3, 3)
    assert runtime.catalog.count() == 7 and first <= set(runtime.catalog.ids())


def test_an_interrupted_import_resumes_where_it_stopped(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "CHUNK_ROWS", 2)
    source = str(image_folder(tmp_path / "cars-ds"))

    def ctrl_c(done: int, total: int, message: str) -> None:
        raise KeyboardInterrupt

    stopped = demo.import_demo(runtime, source, n=6, progress=ctrl_c)
    assert stopped.interrupted and runtime.catalog.count() == 2
    assert runtime.catalog.get_meta(demo.DEMO_DONE_KEY) is None
    resumed = demo.import_demo(runtime, source, n=6)
    assert not resumed.interrupted and (resumed.on_disk, resumed.written) == (2, 4)
    assert runtime.catalog.count() == 6
    assert all(runtime.catalog.get(i).caption_source == "dataset" for i in runtime.catalog.ids())
    assert runtime.catalog.get_meta(demo.DEMO_DONE_KEY)


def test_parquet_with_an_image_column_and_a_class_label(runtime: Runtime, tmp_path: Path) -> None:
    source = parquet_folder(tmp_path / "pq")
    report = demo.import_demo(runtime, str(source), n=10)
    assert report.added == 6  # the whole set: 3 classes x 2
    captions = {runtime.catalog.get(i).caption for i in runtime.catalog.ids()}
    assert captions == {
        "a photo of a 2012 Tesla Model S Sedan",
        "a photo of a 2012 Chevrolet Silverado 1500 Extended Cab",
        "a photo of a 2000 AM General Hummer SUV",
    }


def test_a_data_set_without_images_is_refused_and_nothing_changes(runtime: Runtime, tmp_path: Path) -> None:
    source = parquet_folder(tmp_path / "pq", columns={"text": ["a red car"], "label": [0]})
    with pytest.raises(InvalidInputError, match="no image column"):
        demo.import_demo(runtime, str(source), n=3)
    assert runtime.catalog.count() == 0 and not demo.demo_folder(runtime).exists()


def test_a_data_set_without_usable_labels_is_refused_and_nothing_changes(runtime: Runtime, tmp_path: Path) -> None:
    flat = tmp_path / "flat" / "train"
    image_folder(tmp_path / "drawn", per_class=1)
    flat.mkdir(parents=True)
    for i, file in enumerate(sorted((tmp_path / "drawn").rglob("*.jpg"))):
        (flat / f"{i}.jpg").write_bytes(file.read_bytes())  # no class sub-folders: no label column
    with pytest.raises(InvalidInputError, match="no usable class label"):
        demo.import_demo(runtime, str(tmp_path / "flat"), n=3)
    numbered = parquet_folder(
        tmp_path / "pq", columns={"picture": [{"bytes": file.read_bytes(), "path": None}], "label": [7]}
    )
    with pytest.raises(InvalidInputError, match="no usable class label"):
        demo.import_demo(runtime, str(numbered), n=3)
    assert runtime.catalog.count() == 0 and not demo.demo_folder(runtime).exists()


def test_demo_refuses_a_collection_of_ones_own_images(runtime: Runtime, tmp_path: Path, car_folder: Path) -> None:
    runtime.ingestor().ingest_folder(car_folder)
    with pytest.raises(ConflictError, match="separate CARMATCH_HOME"):
        demo.import_demo(runtime, str(image_folder(tmp_path / "cars-ds")), n=2)
    assert runtime.catalog.count() == 6


def test_demo_command_imports_and_names_a_bad_dataset_by_its_flag(
    settings: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = image_folder(tmp_path / "cars-ds", per_class=1)
    assert main(["demo", "--dataset", str(source), "--n", "2", "--seed", "1"]) == 0
    assert "2 new in the collection, 2 captioned" in capsys.readouterr().out
    assert main(["demo", "--dataset", str(tmp_path / "nowhere"), "--n", "2"]) == 1
    assert "--dataset" in capsys.readouterr().err
    assert main(["demo", "--dataset", str(source), "--split", "nope"]) == 1
    assert "--split" in capsys.readouterr().err


def test_demo_command_says_what_results_mean_with_random_weights(
    settings: object, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = image_folder(tmp_path / "cars-ds", per_class=1)
    assert main(["demo", "--dataset", str(source), "--n", "2"]) == 0
    out = capsys.readouterr().out
    assert "Next: `make run`" in out and "random weights" not in out  # the tiny test model has real (seeded) weights
    monkeypatch.setenv("CARMATCH_PRETRAINED", "none")
    assert main(["demo", "--dataset", str(source), "--n", "2"]) == 0
    assert "random weights (CARMATCH_PRETRAINED=none)" in capsys.readouterr().out
