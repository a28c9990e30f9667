"""Ingest: counts, dedupe, bad files skipped with reasons, captions CSV, resumability."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from carmatch.errors import CancelledError, InvalidInputError
from carmatch.runtime import Runtime
from tests.drawing import png_claiming, save_car


def test_ingest_adds_every_image_and_indexes_it(runtime: Runtime, car_folder: Path) -> None:
    report = runtime.ingestor().ingest_folder(car_folder)
    assert (report.added, report.present, report.embedded, report.skipped) == (6, 0, 6, [])
    assert runtime.catalog.count() == 6
    assert len(runtime.index()) == 6
    record = runtime.catalog.get(report.added_ids[0])
    assert (record.width, record.height) == (96, 64)
    assert Path(record.path).is_absolute()


def test_same_image_twice_is_one_row(runtime: Runtime, car_folder: Path) -> None:
    shutil.copy(car_folder / "red_sedan.jpg", car_folder / "sub" / "copy_of_red.jpg")
    report = runtime.ingestor().ingest_folder(car_folder)
    assert report.added == 6
    assert report.present == 1
    assert runtime.catalog.count() == 6


def test_rerun_embeds_only_new_files(runtime: Runtime, car_folder: Path) -> None:
    runtime.ingestor().ingest_folder(car_folder)
    save_car(car_folder / "new_red_van.png", "red", "van", seed=9)
    report = runtime.ingestor().ingest_folder(car_folder)
    assert (report.added, report.present, report.embedded) == (1, 6, 1)
    assert len(runtime.index()) == 7


def test_changed_file_is_reembedded_under_its_new_hash(runtime: Runtime, car_folder: Path) -> None:
    runtime.ingestor().ingest_folder(car_folder)
    save_car(car_folder / "red_sedan.jpg", "blue", "van", seed=42)
    report = runtime.ingestor().ingest_folder(car_folder)
    assert report.added == 1 and report.embedded == 1


@pytest.mark.parametrize(
    "name,content,reason",
    [
        ("empty.jpg", b"", "empty file"),
        ("notes.png", b"this is not an image at all", "not an image"),
        ("truncated.jpg", None, "corrupt"),
    ],
)
def test_bad_files_are_skipped_with_a_reason(
    runtime: Runtime, car_folder: Path, name: str, content: bytes | None, reason: str
) -> None:
    path = car_folder / name
    if content is None:
        data = (car_folder / "red_sedan.jpg").read_bytes()
        content = data[: len(data) // 3]
    path.write_bytes(content)
    report = runtime.ingestor().ingest_folder(car_folder)
    assert report.added == 6
    assert [(Path(p).name, reason in r) for p, r in report.skipped] == [(name, True)]
    assert reason in report.summary()


@pytest.mark.parametrize(
    "size,reason",
    [((30_000, 30_000), "decompression bomb"), ((9_000, 8_000), "too large")],
)
def test_huge_dimensions_are_refused_before_decoding(
    runtime: Runtime, car_folder: Path, size: tuple[int, int], reason: str
) -> None:
    (car_folder / "huge.png").write_bytes(png_claiming(*size))  # a tiny PNG file that claims a huge pixel count
    report = runtime.ingestor().ingest_folder(car_folder)
    assert report.added == 6
    assert len(report.skipped) == 1 and reason in report.skipped[0][1]


def test_files_with_other_extensions_are_ignored(runtime: Runtime, car_folder: Path) -> None:
    (car_folder / "readme.txt").write_text("hello")
    report = runtime.ingestor().ingest_folder(car_folder)
    assert report.seen == 6 and report.skipped == []


def test_captions_csv_sets_imported_captions(runtime: Runtime, car_folder: Path, tmp_path: Path) -> None:
    csv_file = tmp_path / "captions.csv"
    csv_file.write_text(
        "file,caption\nred_sedan.jpg,a red sedan seen from the side\n"
        "sub/green_van.webp,a green van\nmissing.jpg,nothing\n"
    )
    report = runtime.ingestor().ingest_folder(car_folder, csv_file)
    assert report.captions_imported == 2
    assert [(file, "no ingested image" in reason) for file, reason in report.caption_rows_skipped] == [
        ("missing.jpg", True)
    ]
    record = runtime.catalog.find_by_path(str((car_folder / "red_sedan.jpg").resolve()))
    assert record is not None
    assert (record.caption, record.caption_source) == ("a red sedan seen from the side", "imported")


def test_captions_csv_without_the_right_columns_is_refused(runtime: Runtime, car_folder: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("path,text\nred_sedan.jpg,hello\n")
    with pytest.raises(InvalidInputError, match="file,caption"):
        runtime.ingestor().ingest_folder(car_folder, bad)
    assert runtime.catalog.count() == 0


def test_imported_caption_never_replaces_a_human_one(runtime: Runtime, car_folder: Path, tmp_path: Path) -> None:
    runtime.ingestor().ingest_folder(car_folder)
    record = runtime.catalog.find_by_path(str((car_folder / "red_sedan.jpg").resolve()))
    runtime.catalog.set_caption(record.id, "my own words", "human", author="ann")
    csv_file = tmp_path / "captions.csv"
    csv_file.write_text("file,caption\nred_sedan.jpg,machine words\n")
    report = runtime.ingestor().ingest_folder(car_folder, csv_file)
    assert report.captions_imported == 0
    assert runtime.catalog.get(record.id).caption == "my own words"


def test_cancelled_ingest_keeps_committed_work_and_resumes(runtime: Runtime, car_folder: Path) -> None:
    cancel = threading.Event()
    calls = []

    def progress(done: int, total: int, message: str) -> None:
        calls.append(message)
        cancel.set()  # stop after the first batch is committed

    ingestor = runtime.ingestor()
    ingestor.batch_size = 2
    paths = sorted(car_folder.rglob("*.*"))
    report = ingestor.ingest_paths(paths, car_folder.resolve(), progress=progress, cancel=cancel)
    assert report.interrupted
    assert report.embedded == 2
    assert len(runtime.index()) == 2  # committed batch is searchable
    resumed = runtime.ingestor().ingest_folder(car_folder)
    assert resumed.embedded == 4
    assert len(runtime.index()) == 6


def test_interrupt_between_catalog_and_index_is_repaired_on_next_run(runtime: Runtime, car_folder: Path) -> None:
    runtime.ingestor().ingest_folder(car_folder)
    # simulate a crash after embeddings were committed but before the index was saved
    shutil.rmtree(runtime.settings.index_dir)
    report = runtime.ingestor().ingest_folder(car_folder)
    assert report.embedded == 0
    assert len(runtime.index()) == 6


def test_missing_folder_is_a_clear_error(runtime: Runtime, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not a folder"):
        runtime.ingestor().ingest_folder(tmp_path / "nope")


def test_a_cancellation_reaches_the_user_as_a_carmatch_message() -> None:
    from carmatch.errors import CarmatchError

    assert issubclass(CancelledError, CarmatchError)  # the CLI and the app turn only CarmatchError into a message


def test_ctrl_c_mid_ingest_keeps_committed_batches_and_the_cli_exits_130(
    settings, car_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from admin.cli import main
    from carmatch.embedding.embedder import Embedder

    monkeypatch.setenv("CARMATCH_BATCH_SIZE", "2")
    real_encode = Embedder.encode_image_tensor
    calls = {"n": 0}

    def encode_then_ctrl_c(self: Embedder, batch):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # what Ctrl-C raises in the main thread
        return real_encode(self, batch)

    monkeypatch.setattr(Embedder, "encode_image_tensor", encode_then_ctrl_c)
    assert main(["ingest", str(car_folder)]) == 130
    out = capsys.readouterr().out
    assert "2 embedded" in out and "run the same command again to resume" in out
    monkeypatch.setattr(Embedder, "encode_image_tensor", real_encode)
    assert main(["ingest", str(car_folder)]) == 0
    out = capsys.readouterr().out
    assert "4 embedded" in out
    assert main(["info", "--json"]) == 0
    assert '"index_size": 6' in capsys.readouterr().out


def _review(runtime: Runtime, path: Path) -> str:
    """Caption and approve the image at ``path``; returns its id."""
    record = runtime.catalog.find_by_path(str(path.resolve()))
    assert record is not None
    runtime.catalog.set_caption(record.id, "a red sedan from the side", "human", author="ann")
    runtime.catalog.set_review_state(record.id, "approved", author="ann")
    return record.id


def test_moved_folder_ingested_again_updates_locations_and_keeps_reviews(
    runtime: Runtime, car_folder: Path, tmp_path: Path
) -> None:
    runtime.ingestor().ingest_folder(car_folder)
    image_id = _review(runtime, car_folder / "red_sedan.jpg")
    history = len(runtime.catalog.history(image_id))
    moved = tmp_path / "moved-cars"
    shutil.move(car_folder, moved)
    report = runtime.ingestor().ingest_folder(moved)
    assert (report.added, report.relocated, report.present, report.embedded) == (0, 6, 0, 0)
    assert "6 known image(s) were found at a new place" in report.summary()
    record = runtime.catalog.get(image_id)
    assert record.path == str((moved / "red_sedan.jpg").resolve())
    assert (record.caption, record.review_state) == ("a red sedan from the side", "approved")
    assert len(runtime.catalog.history(image_id)) == history
    hits = runtime.search(text="red sedan", k=6).results
    assert all(Path(hit.path).is_file() for hit in hits) and len(hits) == 6


def test_copy_in_another_folder_becomes_the_location_and_its_captions_match(
    runtime: Runtime, car_folder: Path, tmp_path: Path
) -> None:
    runtime.ingestor().ingest_folder(car_folder)
    copy = tmp_path / "copy"
    shutil.copytree(car_folder, copy)
    (copy / "red_sedan.jpg").rename(copy / "renamed.jpg")  # a new name: only its content matches
    csv_file = tmp_path / "captions.csv"
    csv_file.write_text("file,caption\nrenamed.jpg,a red sedan\nsub/green_van.webp,a green van\n")
    report = runtime.ingestor().ingest_folder(copy, csv_file)
    assert report.relocated == 6 and report.captions_imported == 2 and report.caption_rows_skipped == []
    record = runtime.catalog.find_by_path(str((copy / "renamed.jpg").resolve()))
    assert record is not None and record.caption == "a red sedan"


def test_ingest_captions_match_rows_like_dataset_import(runtime: Runtime, car_folder: Path, tmp_path: Path) -> None:
    from carmatch.dataset.import_captions import ImportRow, find_image

    runtime.ingestor().ingest_folder(car_folder)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(car_folder, elsewhere)
    row = ImportRow(2, "a van", file="sub/green_van.webp")
    expected = find_image(runtime.catalog, row)  # dataset import: by path relative to the ingested folder
    csv_file = tmp_path / "captions.csv"
    csv_file.write_text("file,caption\nsub/green_van.webp,a van\n")
    runtime.ingestor().ingest_paths([], elsewhere, [("sub/green_van.webp", "a van")])
    assert runtime.catalog.get(expected.id).caption == "a van"
    assert find_image(runtime.catalog, row, elsewhere).id == expected.id


def test_a_camera_jpeg_is_decoded_once_at_the_models_size_and_keeps_its_id(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    from carmatch.embedding.embedder import Embedder
    from carmatch.images import sha256_bytes
    from tests.drawing import draw_car

    photo = tmp_path / "photos" / "street.jpg"
    photo.parent.mkdir()
    draw_car(size=(640, 480)).save(photo, quality=90)
    opened: list[str] = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda fp, *a, **k: opened.append("open") or real_open(fp, *a, **k))
    sizes: list[tuple[int, int]] = []
    real_preprocess = Embedder.preprocess_images
    monkeypatch.setattr(
        Embedder,
        "preprocess_images",
        lambda self, images: sizes.extend(i.size for i in images) or real_preprocess(self, images),
    )
    report = runtime.ingestor().ingest_folder(photo.parent)
    assert report.embedded == 1 and opened == ["open"]  # parsed once: header checks, then the draft decode
    assert sizes == [(80, 60)]  # 1/8 scale still covers the tiny model's 32 px
    record = runtime.catalog.get(report.added_ids[0])
    assert record.id == sha256_bytes(photo.read_bytes()) and (record.width, record.height) == (640, 480)


def test_ingesting_one_more_image_appends_to_the_saved_index(runtime: Runtime, car_folder: Path) -> None:
    runtime.ingestor().ingest_folder(car_folder)
    generation = runtime.store.current_generation()
    assert generation is not None
    save_car(car_folder / "new_green_van.png", "green", "van", seed=12)
    report = runtime.ingestor().ingest_folder(car_folder)
    assert report.embedded == 1 and runtime.store.current_generation() == f"{generation}/1"
    assert len(runtime.index()) == 7
    assert runtime.search(image=car_folder / "new_green_van.png", k=1).results[0].id == report.added_ids[0]


def test_a_one_image_ingest_reads_no_whole_collection_listing(
    runtime: Runtime, car_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime.ingestor().ingest_folder(car_folder)
    catalog = runtime.catalog
    for listing in ("ids", "embedded_ids"):  # each a full scan: a second at 100k images
        monkeypatch.setattr(catalog, listing, lambda *a, **k: pytest.fail("listed the whole collection"))
    photo = save_car(car_folder.parent / "upload" / "blue_van.png", "blue", "van", seed=21)
    report = runtime.ingestor().ingest_paths([photo])
    assert report.embedded == 1 and len(runtime.index()) == 7
