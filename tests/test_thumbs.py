"""Thumbnails: a deleted image's thumbnails are removed, so the app no longer serves them."""

from __future__ import annotations

from pathlib import Path

from carmatch.dataset import bulk
from carmatch.runtime import Runtime
from carmatch.thumbs import prune_thumbnails, remove_thumbnails, thumbnail_path


def test_bulk_delete_removes_the_deleted_images_thumbnails_only(runtime: Runtime, car_folder: Path) -> None:
    runtime.ingestor().ingest_folder(car_folder)
    gone = runtime.catalog.find_by_path(str(car_folder / "red_sedan.jpg"))
    kept = runtime.catalog.find_by_path(str(car_folder / "white_van.png"))
    assert gone is not None and kept is not None
    thumbs = runtime.settings.thumbs_dir
    gone_thumbs = [thumbnail_path(thumbs, gone.id, gone.path), thumbnail_path(thumbs, gone.id, gone.path, side=64)]
    kept_thumb = thumbnail_path(thumbs, kept.id, kept.path)
    bulk.bulk_delete(runtime.catalog, runtime.store, [gone.id], thumbs_dir=thumbs)
    assert not any(path.exists() for path in gone_thumbs)
    assert kept_thumb.exists()


def test_remove_thumbnails_ignores_ids_that_are_not_digests(tmp_path: Path) -> None:
    other = tmp_path / "ab" / "abcdef-320.jpg"
    other.parent.mkdir()
    other.write_bytes(b"jpeg")
    assert remove_thumbnails(tmp_path, ["ab*", "../ab", "", "abcdef"]) == 1
    assert not other.exists()


def test_prune_removes_thumbnails_of_images_no_longer_in_the_collection(runtime: Runtime, car_folder: Path) -> None:
    runtime.ingestor().ingest_folder(car_folder)
    gone = runtime.catalog.find_by_path(str(car_folder / "red_sedan.jpg"))
    kept = runtime.catalog.find_by_path(str(car_folder / "white_van.png"))
    assert gone is not None and kept is not None
    thumbs = runtime.settings.thumbs_dir
    orphan = thumbnail_path(thumbs, gone.id, gone.path)
    kept_thumb = thumbnail_path(thumbs, kept.id, kept.path)
    runtime.catalog.delete_images([gone.id])  # as a delete before thumbnails were removed with their image
    assert prune_thumbnails(thumbs, runtime.catalog.ids()) == 1
    assert not orphan.exists() and kept_thumb.exists()
