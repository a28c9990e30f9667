"""The Dataset tab's event functions, driven as the browser would: access, grid, editor, bulk, import, export."""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from carmatch.access import PASSWORD_THROTTLE, READ_ONLY_NOTE
from carmatch.errors import AccessDeniedError, InvalidInputError
from carmatch.runtime import Runtime
from carmatch.ui import dataset_actions as actions
from carmatch.ui import dataset_bulk_actions as bulk_actions
from carmatch.ui import dataset_files_actions as files_actions
from carmatch.ui import dataset_history, dataset_selection
from carmatch.ui.dataset_bulk_actions import SCOPE_MATCHING, SCOPE_SELECTED
from tests.drawing import draw_car

PASSWORD = "s3cret-pass"


def ids_by_name(runtime: Runtime) -> dict[str, str]:
    return {Path(r.path).name: r.id for r in runtime.catalog.get_many(runtime.catalog.ids()).values()}


@pytest.fixture
def admin_runtime(runtime: Runtime, car_folder: Path) -> Runtime:
    """An ingested collection with an admin password configured; four images captioned by Claude."""
    runtime.settings = runtime.settings.with_overrides(admin_password=PASSWORD)
    runtime.ingestor().ingest_folder(car_folder)
    ids = ids_by_name(runtime)
    for name, color in (
        ("red_sedan.jpg", "red"),
        ("blue_pickup.png", "blue"),
        ("white_van.png", "white"),
        ("sub/green_van.webp", "green"),
    ):
        runtime.catalog.set_caption(ids[Path(name).name], f"a {color} car", "claude-live", {"color": color})
    return runtime


def test_without_a_configured_password_everything_is_read_only(runtime: Runtime, car_folder: Path) -> None:
    runtime.ingestor().ingest_folder(car_folder)
    assert READ_ONLY_NOTE in actions.access_note(runtime)
    stored, note = actions.unlock(runtime, "anything")
    assert stored == "" and READ_ONLY_NOTE in note
    image_id = runtime.catalog.ids()[0]
    with pytest.raises(AccessDeniedError, match="CARMATCH_ADMIN_PASSWORD"):
        actions.save(runtime, "anything", image_id, 0, "hacked", [], actions.make_query())
    assert runtime.catalog.get(image_id).caption is None
    assert actions.load_page(runtime, actions.make_query()).total == 6  # browsing still works


def test_wrong_password_is_told_and_changes_nothing(admin_runtime: Runtime, tmp_path: Path) -> None:
    stored, note = actions.unlock(admin_runtime, "guess")
    assert stored == "" and "Wrong admin password" in note
    image_id = ids_by_name(admin_runtime)["red_sedan.jpg"]
    version = admin_runtime.catalog.get(image_id).version
    query = actions.make_query()
    for attempt in (
        lambda: actions.save(admin_runtime, "guess", image_id, version, "hacked", [], query),
        lambda: actions.review(admin_runtime, "guess", image_id, version, "rejected", query),
        lambda: actions.undo(admin_runtime, "guess", image_id, version),
        lambda: bulk_actions.bulk(admin_runtime, "guess", "delete", SCOPE_MATCHING, [], query, confirmed=True),
        lambda: files_actions.export(admin_runtime, "guess", "csv"),
        lambda: files_actions.import_preview(admin_runtime, None, tmp_path / "x.csv"),
        lambda: files_actions.add_images(admin_runtime, "", [tmp_path / "x.png"]),
    ):
        with pytest.raises(AccessDeniedError):
            attempt()
    assert admin_runtime.catalog.get(image_id).caption == "a red car"
    assert admin_runtime.catalog.count() == 6
    stored, note = actions.unlock(admin_runtime, PASSWORD)  # every password box counts on the one brake
    assert stored == "" and "Too many wrong admin passwords" in note
    PASSWORD_THROTTLE.reset()  # the wait is over
    stored, note = actions.unlock(admin_runtime, PASSWORD)
    assert stored == PASSWORD and "unlocked" in note


def test_grid_filters_pages_and_counts(admin_runtime: Runtime) -> None:
    view = actions.load_page(admin_runtime, actions.make_query(color="red"))
    assert view.total == 1 and len(view.gallery) == 1
    thumb, label = view.gallery[0]
    assert Path(thumb).resolve().is_relative_to(admin_runtime.settings.thumbs_dir.resolve()) and "a red car" in label
    assert view.choices[0][1] == view.ids[0]
    assert actions.load_page(admin_runtime, actions.make_query(source="none")).total == 2
    assert actions.load_page(admin_runtime, actions.make_query(text="car", state="unreviewed")).total == 4
    paged = actions.load_page(admin_runtime, actions.make_query(sort="file name"), 2, page_size=4)
    assert paged.page == 2 and len(paged.ids) == 2 and paged.info == "Page 2 of 2 · 6 matching"
    assert "**6 images**" in actions.counts_markdown(admin_runtime)
    assert "unreviewed **6**" in actions.counts_markdown(admin_runtime)


def test_edit_save_moves_to_next_unreviewed_and_undo_restores(admin_runtime: Runtime) -> None:
    query = actions.make_query(source="claude-live", sort="file name")
    first = actions.load_page(admin_runtime, query).ids[0]
    view = actions.open_image(admin_runtime, first)
    assert (
        view.image is not None
        and "claude-live" in view.meta
        and "<b>v1</b>" in view.history
        and re.search(r"<time>\d{4}-\d\d-\d\d \d\d:\d\d UTC</time>", view.history)
    )
    edited = actions.save(
        admin_runtime,
        PASSWORD,
        first,
        view.version,
        "a shiny car",
        [view.attributes["color"], "", "", "", "front"],
        query,
        review_state="approved",
        advance=True,
    )
    assert edited.image_id != first and "Approved" in edited.message  # Enter: saved, approved, next one
    stored = admin_runtime.catalog.get(first)
    assert stored.caption == "a shiny car" and stored.review_state == "approved"
    assert stored.caption_source == "human" and stored.caption_author == actions.APP_AUTHOR
    assert stored.attributes["viewpoint"] == "front"

    again = actions.open_image(admin_runtime, first)
    newest = again.history.split("</li>")[0]  # one line per version, newest first, with a word diff
    assert "<ins>shiny</ins>" in newest and "approved" in newest and actions.APP_AUTHOR in newest
    restored = actions.undo(admin_runtime, PASSWORD, first, again.version)
    assert restored.caption.startswith("a ") and restored.caption != "a shiny car"
    assert admin_runtime.catalog.get(first).review_state == "unreviewed"
    assert "Restored" in restored.message


def test_concurrent_edit_in_the_tab_shows_both_versions(admin_runtime: Runtime) -> None:
    image_id = ids_by_name(admin_runtime)["blue_pickup.png"]
    mine = actions.open_image(admin_runtime, image_id)
    theirs = actions.open_image(admin_runtime, image_id)
    actions.save(admin_runtime, PASSWORD, image_id, theirs.version, "their blue truck", [], actions.make_query())
    view = actions.save(admin_runtime, PASSWORD, image_id, mine.version, "my blue pickup", [], actions.make_query())
    assert "their blue truck" in view.conflict and "my blue pickup" in view.conflict
    assert view.caption == "my blue pickup" and view.version == mine.version  # the editor keeps my text
    assert admin_runtime.catalog.get(image_id).caption == "their blue truck"
    reloaded = actions.open_image(admin_runtime, image_id)
    assert reloaded.caption == "their blue truck" and not reloaded.conflict


def test_skip_and_reject_move_on(admin_runtime: Runtime) -> None:
    query = actions.make_query(state="unreviewed", sort="file name")
    ids = actions.load_page(admin_runtime, query).ids
    skipped = actions.skip(admin_runtime, ids[0], query)
    assert skipped.image_id == ids[1] and admin_runtime.catalog.get(ids[0]).review_state == "unreviewed"
    version = admin_runtime.catalog.get(ids[1]).version
    after = actions.review(admin_runtime, PASSWORD, ids[1], version, "rejected", query)
    assert admin_runtime.catalog.get(ids[1]).review_state == "rejected" and after.image_id == ids[2]


def test_next_and_previous_image_follow_the_grid_order_across_pages(admin_runtime: Runtime) -> None:
    query = actions.make_query(sort="file name")
    ids = actions.load_page(admin_runtime, query, page_size=2).ids + actions.load_page(admin_runtime, query, 2, 2).ids
    assert dataset_selection.step_image(admin_runtime, ids[1], query, +1).image_id == ids[2]  # onto the next page
    assert dataset_selection.step_image(admin_runtime, ids[2], query, -1).image_id == ids[1]
    assert dataset_selection.step_image(admin_runtime, None, query, +1).image_id == ids[0]
    stay = dataset_selection.step_image(admin_runtime, ids[0], query, -1)
    assert stay.image_id == ids[0] and "first image" in stay.message


def test_history_dates_are_short_and_marked_utc_for_the_browser_to_localise() -> None:
    assert dataset_history.short_date("2026-11-25T16:42:07+00:00") == "2026-11-25 16:42 UTC"
    assert dataset_history.short_date(None) == ""


def test_bulk_approve_selected_and_by_filter(admin_runtime: Runtime) -> None:
    query = actions.make_query(color="red")
    ids = actions.load_page(admin_runtime, query).ids
    text = bulk_actions.bulk(admin_runtime, PASSWORD, "approve", SCOPE_SELECTED, ids, query)
    assert "1 changed of 1" in text
    seen: list[tuple[int, int, str]] = []
    text = bulk_actions.bulk(
        admin_runtime,
        PASSWORD,
        "approve",
        SCOPE_MATCHING,
        [],
        actions.make_query(),
        confirmed=True,
        progress=lambda d, t, m: seen.append((d, t, m)),
    )
    assert "3 changed of 6" in text and "2 skipped" in text and seen[-1][:2] == (6, 6)
    assert "approved **4**" in actions.counts_markdown(admin_runtime)
    with pytest.raises(InvalidInputError, match="No images selected"):
        bulk_actions.bulk(admin_runtime, PASSWORD, "approve", SCOPE_SELECTED, [], query)


def test_bulk_on_everything_matching_asks_for_confirmation_with_the_count(admin_runtime: Runtime) -> None:
    with pytest.raises(InvalidInputError, match="approve all 6 image"):
        bulk_actions.bulk(admin_runtime, PASSWORD, "approve", SCOPE_MATCHING, [], actions.make_query())
    assert "approved **0**" in actions.counts_markdown(admin_runtime)


def test_bulk_approve_keeps_rejections_unless_asked(admin_runtime: Runtime) -> None:
    ids = actions.load_page(admin_runtime, actions.make_query(color="red")).ids
    record = admin_runtime.catalog.get(ids[0])
    admin_runtime.catalog.set_review_state(ids[0], "rejected", author="t", expected_version=record.version)
    text = bulk_actions.bulk(admin_runtime, PASSWORD, "approve", SCOPE_SELECTED, ids, actions.make_query())
    assert "1 skipped" in text and "rejected" in text
    assert admin_runtime.catalog.get(ids[0]).review_state == "rejected"
    query = actions.make_query()
    bulk_actions.bulk(admin_runtime, PASSWORD, "approve", SCOPE_SELECTED, ids, query, overturn_rejected=True)
    assert admin_runtime.catalog.get(ids[0]).review_state == "approved"


def test_bulk_delete_needs_confirmation_and_leaves_search(admin_runtime: Runtime) -> None:
    query = actions.make_query(color="white")
    ids = actions.load_page(admin_runtime, query).ids
    with pytest.raises(InvalidInputError, match="confirm"):
        bulk_actions.bulk(admin_runtime, PASSWORD, "delete", SCOPE_MATCHING, [], query)
    before = [r.id for r in admin_runtime.search(text="a white van", k=6).results]
    assert ids[0] in before
    bulk_actions.bulk(admin_runtime, PASSWORD, "delete", SCOPE_MATCHING, [], query, confirmed=True)
    after = [r.id for r in admin_runtime.search(text="a white van", k=6).results]
    assert ids[0] not in after and len(after) == 5
    assert actions.load_page(admin_runtime, actions.make_query()).total == 5


def test_bulk_caption_with_claude_uses_the_live_captioner(admin_runtime: Runtime) -> None:
    from botocore.stub import Stubber

    from carmatch.aws import make_client

    client = make_client("bedrock-runtime", "us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    reply = json.dumps(
        {
            "caption": "A black pickup truck seen from the side.",
            "attributes": {
                "color": "black",
                "body_type": "pickup",
                "make": None,
                "model": None,
                "viewpoint": "side",
                "distinctive_features": [],
                "confidence": 0.6,
            },
        }
    )
    image_id = ids_by_name(admin_runtime)["black_pickup.jpeg"]
    with Stubber(client) as stub:
        stub.add_response(
            "converse",
            {
                "output": {"message": {"role": "assistant", "content": [{"text": reply}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
                "metrics": {"latencyMs": 1},
            },
        )
        text = bulk_actions.bulk(
            admin_runtime,
            PASSWORD,
            "caption with Claude",
            SCOPE_SELECTED,
            [image_id],
            actions.make_query(),
            bedrock_client=client,
        )
    record = admin_runtime.catalog.get(image_id)
    assert "Captioned 1 of 1" in text
    assert record.caption_source == "claude-live" and record.caption and "pickup" in record.caption
    assert record.review_state == "unreviewed"


def test_import_preview_then_apply_in_the_tab(admin_runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "caps.csv"
    path.write_text("file,caption,make\nsub/yellow_sedan.bmp,a yellow sedan,fiat\nnope.png,ghost,\n")
    summary, table, plan = files_actions.import_preview(admin_runtime, PASSWORD, path)
    assert "1 caption(s) will change" in summary and "nope.png" in summary
    assert table == [[2, "sub/yellow_sedan.bmp", "", "a yellow sedan", '{"make": "fiat"}']]
    image_id = ids_by_name(admin_runtime)["yellow_sedan.bmp"]
    assert admin_runtime.catalog.get(image_id).caption is None
    report = files_actions.import_apply(admin_runtime, PASSWORD, plan)
    assert "1 changed of 1" in report
    record = admin_runtime.catalog.get(image_id)
    assert record.caption == "a yellow sedan" and record.caption_source == "imported"
    with pytest.raises(InvalidInputError, match="preview"):
        files_actions.import_apply(admin_runtime, PASSWORD, [])


def test_export_from_the_tab_gives_downloadable_files(admin_runtime: Runtime) -> None:
    bulk_actions.bulk(admin_runtime, PASSWORD, "approve", SCOPE_MATCHING, [], actions.make_query(), confirmed=True)
    files, text = files_actions.export(admin_runtime, PASSWORD, "jsonl")
    assert len(files) == 1 and Path(files[0]).read_text().count("\n") == 4 and "Exported 4" in text
    assert not (admin_runtime.settings.home / "exports").exists()  # CSV / JSONL: only the download
    files, text = files_actions.export(admin_runtime, PASSWORD, "titan", s3_prefix="s3://bucket/p/")
    assert {Path(f).name for f in files} == {"titan-train.jsonl", "titan-validation.jsonl", "titan-manifest.json"}
    assert "128 px" in text  # the 96x64 test drawings are too small for Titan: skipped with the reason


def test_export_with_nothing_approved_says_why_and_writes_nothing(admin_runtime: Runtime) -> None:
    with pytest.raises(InvalidInputError, match="0 approved captions. Tick 'include unreviewed'"):
        files_actions.export(admin_runtime, PASSWORD, "jsonl")
    assert not (admin_runtime.settings.home / "exports").exists()
    files, text = files_actions.export(admin_runtime, PASSWORD, "jsonl", include_unreviewed=True)
    assert len(files) == 1 and "Exported 4" in text


def test_upload_images_and_zip_from_the_tab(admin_runtime: Runtime, tmp_path: Path) -> None:
    single = tmp_path / "new_car.png"
    draw_car("green", "pickup", seed=77).save(single)
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("x/another.png", single.read_bytes()[:60])  # corrupt: refused by validation
        draw_car("black", "van", seed=78).save(tmp_path / "v.png")
        zf.write(tmp_path / "v.png", "x/van.png")
    text = files_actions.add_images(admin_runtime, PASSWORD, [str(single), str(archive)])
    assert "Added 2 new image(s)" in text and "1 skipped" in text
    assert admin_runtime.catalog.count() == 8
    assert len(admin_runtime.index()) == 8


def test_app_has_a_dataset_tab(admin_runtime: Runtime) -> None:
    import app

    demo = app.build_demo(admin_runtime)
    labels = {getattr(block, "label", None) for block in demo.blocks.values()}
    assert {"Admin password", "Caption (Enter = save, approve and go to the next unreviewed)"} <= labels


def test_thumbnail_clicks_pick_and_unpick_with_marks() -> None:
    ids = ["a1", "b2", "c3"]
    chosen = bulk_actions.toggle_selection(ids, [], 1)
    chosen = bulk_actions.toggle_selection(ids, chosen, 2)
    assert chosen == ["b2", "c3"] and bulk_actions.toggle_selection(ids, chosen, 1) == ["c3"]
    items = [(f"t{n}.png", actions.tile_label("unreviewed", f"a {kind}")) for n, kind in enumerate(("car", "van"))]
    items.append(("t3.png", actions.tile_label("approved", "a truck", picked=True)))
    marked = bulk_actions.mark_selected(items, ids, ["b2"])
    labels = [caption for _, caption in marked]
    assert labels == ["unreviewed · a car", "picked · unreviewed · a van", "approved · a truck"]
    assert "1 selected" in bulk_actions.selection_note(["c3"])


def test_shift_click_picks_every_thumbnail_between() -> None:
    ids = ["a", "b", "c", "d", "e"]
    assert bulk_actions.pick_range(ids, ["e"], 3, 1) == ["e", "b", "c", "d"]
    assert bulk_actions.pick_range(ids, [], 0, 9) == ids  # past the page's end stops at the last one


def test_a_change_while_locked_says_to_enter_the_password(admin_runtime: Runtime) -> None:
    image_id = actions.load_page(admin_runtime, actions.make_query()).ids[0]
    before = admin_runtime.catalog.get(image_id)
    with pytest.raises(AccessDeniedError, match="enter the admin password to edit"):
        actions.save(admin_runtime, "", image_id, before.version, "new words", [], actions.make_query())
    assert admin_runtime.catalog.get(image_id).version == before.version


def test_an_export_removes_earlier_exports_old_download_copies_from_the_system_temp_folder(
    admin_runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_temp = tmp_path / "system-temp"
    system_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    stale = system_temp / f"{files_actions.DOWNLOAD_PREFIX}old"
    stale.mkdir()
    (stale / "pairs.jsonl").write_text("{}\n")
    then = time.time() - files_actions.DOWNLOAD_KEEP_SECONDS - 60
    os.utime(stale, (then, then))
    files, _ = files_actions.export(admin_runtime, PASSWORD, "jsonl", include_unreviewed=True)
    assert not stale.exists()
    assert [p.name for p in system_temp.iterdir()] == [Path(files[0]).parent.name]


def test_the_editor_names_the_file_within_its_folder_never_a_server_path(admin_runtime: Runtime) -> None:
    image_id = next(iter(ids_by_name(admin_runtime).values()))
    record = admin_runtime.catalog.get(image_id)
    meta = actions.open_image(admin_runtime, image_id).meta
    assert Path(record.path).name in meta
    assert str(Path(record.path).parent) not in meta and str(admin_runtime.settings.home) not in meta


def test_an_export_download_leaves_nothing_behind_once_gradio_served_it(
    admin_runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gradio as gr
    from gradio import processing_utils

    from carmatch.ui import dataset_files_panel

    system_temp = tmp_path / "system-temp"
    system_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    with gr.Blocks() as demo:
        dataset_files_panel.build_export(admin_runtime, gr.State(PASSWORD))
    export = next(f.fn for f in demo.fns.values() if f.fn is not None and f.fn.__name__ == "on_export")
    download = next(b for b in demo.blocks.values() if getattr(b, "label", None) == "Download")
    answer = export(PASSWORD, "csv", True, "")
    files, text = next(answer)
    assert "Exported 4" in text and [p.parent.parent for p in map(Path, files)] == [system_temp]
    served = processing_utils.move_files_to_cache(download.postprocess(files), download, postprocess=True)
    cached = Path(served[0]["path"])  # Gradio's own copy, which delete_cache removes
    assert next(answer, None) is None  # Gradio resumes the event after copying: the download folder goes
    assert not list(system_temp.glob(f"{files_actions.DOWNLOAD_PREFIX}*"))
    assert not (admin_runtime.settings.home / "exports").exists()
    assert cached.read_text().startswith("id,file,caption")
    refused = export("guess", "csv", True, "")
    assert next(refused)[0] is None and not list(system_temp.glob(f"{files_actions.DOWNLOAD_PREFIX}*"))


def test_removing_downloads_touches_only_export_download_folders(admin_runtime: Runtime) -> None:
    catalog_file = admin_runtime.settings.db_path
    files_actions.remove_downloads([str(catalog_file), "/etc/hostname", "relative.csv"])
    assert catalog_file.exists() and Path("/etc/hostname").exists()
