"""Thumbnails: WebP at display size, made ahead, served in place with long cache headers; removed with their image."""

from __future__ import annotations

from pathlib import Path

import pytest

from carmatch.dataset import bulk
from carmatch.runtime import Runtime
from carmatch.thumbs import THUMB_SIDE, make_thumbnails, prune_thumbnails, remove_thumbnails, thumbnail_path


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


def drawn_car(folder: Path, name: str = "car.jpg") -> Path:
    from tests.drawing import draw_car

    path = folder / name
    draw_car("red", "sedan", size=(640, 480)).save(path, format="JPEG", quality=90)
    return path


def test_thumbnails_are_webp_at_display_size_made_once(tmp_path: Path) -> None:
    from PIL import Image

    source = drawn_car(tmp_path)
    thumb = thumbnail_path(tmp_path / "thumbs", "ab" * 32, source)
    with Image.open(thumb) as img:
        assert img.format == "WEBP" and max(img.size) == THUMB_SIDE
    assert thumb.stat().st_size < source.stat().st_size / 2
    before = thumb.stat().st_mtime_ns
    assert thumbnail_path(tmp_path / "thumbs", "ab" * 32, source) == thumb and thumb.stat().st_mtime_ns == before


def test_missing_thumbnails_are_made_ahead_and_unreadable_originals_skipped(tmp_path: Path) -> None:
    source = drawn_car(tmp_path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    images = [("aa" * 32, source), ("bb" * 32, broken), ("cc" * 32, tmp_path / "gone.jpg")]
    assert make_thumbnails(tmp_path / "thumbs", images) == 1
    assert make_thumbnails(tmp_path / "thumbs", images) == 0  # already there: nothing made again
    assert (tmp_path / "thumbs" / "aa" / f"{'aa' * 32}-{THUMB_SIDE}.webp").exists()


def test_prune_removes_thumbnails_of_an_earlier_format(tmp_path: Path) -> None:
    old = tmp_path / "ab" / f"{'ab' * 32}-320.jpg"
    old.parent.mkdir()
    old.write_bytes(b"jpeg")
    current = thumbnail_path(tmp_path, "ab" * 32, drawn_car(tmp_path))
    assert prune_thumbnails(tmp_path, ["ab" * 32]) == 1
    assert not old.exists() and current.exists()


def test_gallery_thumbnails_are_served_in_place_with_a_year_of_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gradio as gr
    from gradio import processing_utils
    from starlette.applications import Starlette
    from starlette.responses import FileResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from carmatch.ui.thumbnails import ThumbnailCacheHeaders, gallery_image, with_thumbnail_cache

    thumbs = tmp_path / "thumbs"
    shown = gallery_image(thumbs, "ab" * 32, drawn_car(tmp_path))
    monkeypatch.setattr(processing_utils, "hash_file", lambda *a, **k: pytest.fail("thumbnail hashed per answer"))
    gallery = gr.Gallery()
    answer = processing_utils.move_files_to_cache(gallery.postprocess([shown]), gallery, postprocess=True)
    assert answer[0]["image"]["path"] == shown  # named where it lies: not copied into Gradio's cache
    assert str(tmp_path) not in shown and Path(shown).resolve().is_relative_to(thumbs.resolve())  # via the alias

    other = tmp_path / "other.webp"
    other.write_bytes(b"x")
    app = Starlette(routes=[Route("/gradio_api/file={path:path}", lambda r: FileResponse(r.path_params["path"]))])
    client = TestClient(ThumbnailCacheHeaders(app, thumbs))
    reply = client.get(f"/gradio_api/file={shown}")
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/webp"
    assert reply.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "cache-control" not in client.get(f"/gradio_api/file={other}").headers  # only thumbnails
    kwargs = with_thumbnail_cache({"middleware": ["upload limits"]}, thumbs)  # what app.launch_options passes
    assert kwargs["middleware"][0] == "upload limits" and kwargs["middleware"][1].cls is ThumbnailCacheHeaders
