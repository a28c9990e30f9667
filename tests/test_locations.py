"""Photos move: missing files are counted with the fix, and relocate points the catalog at the new folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from carmatch.errors import InvalidInputError
from carmatch.locations import missing_files, missing_files_problem, relocate
from carmatch.runtime import Runtime


def test_relocate_rewrites_locations_under_the_old_folder_only(
    runtime: Runtime, car_folder: Path, tmp_path: Path
) -> None:
    runtime.ingestor().ingest_folder(car_folder)
    other = tmp_path / "other"
    other.mkdir()
    (tmp_path / "cars-2").mkdir()  # a sibling whose name starts like the old folder's
    record = runtime.catalog.find_by_path(str((car_folder / "sub" / "green_van.webp").resolve()))
    assert record is not None
    runtime.catalog.set_caption(record.id, "a green van", "human", author="ann")
    moved = tmp_path / "new-home"
    shutil.move(car_folder, moved)
    assert len(missing_files(runtime.catalog)) == 6
    report = relocate(runtime.catalog, car_folder, moved)
    assert (report.relocated, report.still_missing) == (6, 0)
    assert missing_files(runtime.catalog) == []
    after = runtime.catalog.get(record.id)
    assert after.path == str(moved / "sub" / "green_van.webp") and after.caption == "a green van"
    assert after.root == str(moved)
    assert relocate(runtime.catalog, tmp_path / "cars-2", other).relocated == 0


def test_relocate_to_a_folder_that_does_not_exist_changes_nothing(
    runtime: Runtime, car_folder: Path, tmp_path: Path
) -> None:
    runtime.ingestor().ingest_folder(car_folder)
    before = runtime.catalog.image_paths()
    with pytest.raises(InvalidInputError, match="is not a folder"):
        relocate(runtime.catalog, car_folder, tmp_path / "nowhere")
    assert runtime.catalog.image_paths() == before


def test_missing_files_problem_counts_and_names_the_fix() -> None:
    missing = [(f"id{n}", f"/gone/{n}.jpg") for n in range(5)]
    text = missing_files_problem(missing)
    assert text.startswith("5 image file(s) are not where the catalog says (/gone/0.jpg, /gone/1.jpg, /gone/2.jpg, …)")
    assert "carmatch relocate OLD_FOLDER NEW_FOLDER" in text and "carmatch ingest NEW_FOLDER" in text
