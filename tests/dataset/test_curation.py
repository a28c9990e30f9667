"""Curation: filters, counts, paging, edits with history and undo, conflicts, bulk actions, import, uploads."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from carmatch.dataset import bulk, curation
from carmatch.dataset.import_captions import apply_import, preview_import, read_import_file
from carmatch.errors import ConflictError, InvalidInputError
from carmatch.ingest.uploads import add_uploads, safe_member_path
from carmatch.runtime import Runtime
from tests.drawing import draw_car


def ids_by_name(runtime: Runtime) -> dict[str, str]:
    """Image id by file name."""
    cat = runtime.catalog
    return {Path(cat.get(i, include_deleted=True).path).name: i for i in cat.ids(include_deleted=True)}


@pytest.fixture
def curated(runtime: Runtime, car_folder: Path) -> Runtime:
    """Six ingested cars with a mix of caption sources, attributes, review states and a failure."""
    runtime.ingestor().ingest_folder(car_folder)
    ids = ids_by_name(runtime)
    cat = runtime.catalog
    cat.set_caption(
        ids["red_sedan.jpg"],
        "a red sedan parked",
        "claude-live",
        {"color": "red", "body_type": "sedan", "make": "toyota"},
        model="claude",
        prompt_version="p1",
    )
    cat.set_caption(ids["blue_pickup.png"], "a blue pickup truck", "imported", {"color": "blue", "body_type": "pickup"})
    cat.set_caption(ids["green_van.webp"], "a green van", "human", {"color": "green", "body_type": "van"})
    cat.set_caption(
        ids["black_pickup.jpeg"], "a black pickup at night", "claude-batch", {"color": "black", "body_type": "pickup"}
    )
    cat.set_review_state(ids["green_van.webp"], "approved")
    cat.set_review_state(ids["black_pickup.jpeg"], "rejected")
    cat.record_caption_failure(ids["yellow_sedan.bmp"], "claude-live", "model declined")
    return runtime


def names(runtime: Runtime, records: list) -> set[str]:
    return {Path(r.path).name for r in records}


def test_filters_by_caption_text_attribute_source_and_state(curated: Runtime) -> None:
    cat = curated.catalog
    q = curation.Query
    assert names(curated, curation.page(cat, q(text="pickup")).records) == {"blue_pickup.png", "black_pickup.jpeg"}
    assert names(curated, curation.page(cat, q(text="PICKUP night")).records) == {"black_pickup.jpeg"}
    assert names(curated, curation.page(cat, q(text="100%_")).records) == set()  # LIKE wildcards are literal
    assert names(curated, curation.page(cat, q(attributes={"color": "Red"})).records) == {"red_sedan.jpg"}
    assert names(curated, curation.page(cat, q(attributes={"body_type": "pickup"}, source="imported")).records) == {
        "blue_pickup.png"
    }
    assert names(curated, curation.page(cat, q(source="none")).records) == {"yellow_sedan.bmp", "white_van.png"}
    assert names(curated, curation.page(cat, q(state="approved")).records) == {"green_van.webp"}
    assert names(curated, curation.page(cat, q(state="rejected")).records) == {"black_pickup.jpeg"}
    assert names(curated, curation.page(cat, q(state="failed")).records) == {"yellow_sedan.bmp"}
    with pytest.raises(InvalidInputError, match="review state"):
        curation.page(cat, q(state="maybe"))
    with pytest.raises(InvalidInputError, match="sort"):
        curation.page(cat, q(sort="random"))


def test_counts_cover_every_state_and_failed_captioning(curated: Runtime) -> None:
    counts = curation.state_counts(curated.catalog)
    assert counts == {
        "unreviewed": 4,
        "approved": 1,
        "rejected": 1,
        "failed": 1,
        "uncaptioned": 2,
        "total": 6,
    }
    curated.catalog.set_caption(ids_by_name(curated)["yellow_sedan.bmp"], "a yellow sedan", "claude-live")
    assert curation.state_counts(curated.catalog)["failed"] == 0  # a caption arrived: no longer failed


def test_pages_are_sorted_and_clamped(curated: Runtime) -> None:
    cat = curated.catalog
    by_name = curation.page(cat, curation.Query(sort="file name"), 1, page_size=4)
    assert by_name.total == 6 and by_name.pages == 2
    paths = [r.path for r in by_name.records]
    assert paths == sorted(paths)
    second = curation.page(cat, curation.Query(sort="file name"), 2, page_size=4)
    assert len(second.records) == 2 and not set(paths) & {r.path for r in second.records}
    assert curation.page(cat, curation.Query(), 99, page_size=4).page == 2
    captioned = curation.page(cat, curation.Query(sort="recently captioned"), 1, page_size=6).records
    assert captioned[-1].caption is None  # uncaptioned last


def test_paging_queries_use_indexes_not_full_sorts(curated: Runtime) -> None:
    plan = curated.catalog.explain_page(curation.Query(state="unreviewed"), limit=48, offset=960)
    assert "USING" in plan and "INDEX" in plan and "TEMP B-TREE" not in plan
    assert curated.catalog.schema_version >= 2


def test_edit_is_a_new_history_version_and_undo_steps_back(curated: Runtime) -> None:
    cat = curated.catalog
    image_id = ids_by_name(curated)["red_sedan.jpg"]
    before = cat.get(image_id)
    after = curation.save_caption(
        cat, image_id, " a  dark red sedan ", {"color": "dark red", "make": ""}, before.version, author="alice"
    )
    assert after.caption == "a dark red sedan" and after.caption_source == "human"
    assert after.attributes == {"color": "dark red", "body_type": "sedan"}  # blank make removed, rest kept
    assert after.caption_author == "alice" and after.version == before.version + 1
    history = curation.detail(cat, image_id).history
    assert [h.caption for h in history[:2]] == ["a dark red sedan", "a red sedan parked"]
    assert history[0].author == "alice" and history[0].source == "human"

    approved = curation.set_review(cat, image_id, "approved", after.version)
    undone = curation.undo(cat, image_id, approved.version)  # undo the approval
    assert undone.caption == "a dark red sedan" and undone.review_state == "unreviewed"
    undone = curation.undo(cat, image_id, undone.version)  # then the edit
    assert undone.caption == "a red sedan parked" and undone.caption_source == "claude-live"
    assert undone.caption_model == "claude" and undone.attributes["make"] == "toyota"
    assert len(cat.history(image_id)) == 5  # nothing is ever lost: undos are versions too
    with pytest.raises(InvalidInputError, match="Nothing to undo"):
        curation.undo(cat, image_id, undone.version)


def test_concurrent_edit_is_refused_with_both_versions(curated: Runtime) -> None:
    cat = curated.catalog
    image_id = ids_by_name(curated)["blue_pickup.png"]
    loaded = cat.get(image_id).version
    curation.save_caption(cat, image_id, "their caption", {}, loaded, author="bob")
    with pytest.raises(curation.CaptionConflict) as info:
        curation.save_caption(cat, image_id, "my caption", {}, loaded, author="alice")
    assert isinstance(info.value, ConflictError)
    assert info.value.theirs.caption == "their caption" and info.value.yours_caption == "my caption"
    assert "their caption" in str(info.value) and "my caption" in str(info.value)
    assert cat.get(image_id).caption == "their caption"
    with pytest.raises(curation.CaptionConflict):
        curation.set_review(cat, image_id, "approved", loaded)


def test_approving_unchanged_caption_keeps_its_source(curated: Runtime) -> None:
    cat = curated.catalog
    image_id = ids_by_name(curated)["red_sedan.jpg"]
    record = cat.get(image_id)
    saved = curation.save_caption(
        cat, image_id, record.caption or "", {"color": "red"}, record.version, review_state="approved"
    )
    assert saved.review_state == "approved" and saved.caption_source == "claude-live"
    with pytest.raises(InvalidInputError, match="no caption"):
        curation.set_review(cat, ids_by_name(curated)["white_van.png"], "approved")
    with pytest.raises(InvalidInputError, match="empty"):
        curation.save_caption(cat, image_id, "   ", {}, saved.version)


def test_next_unreviewed_follows_the_order_and_wraps(curated: Runtime) -> None:
    cat = curated.catalog
    query = curation.Query(sort="file name")
    order = [r.id for r in curation.page(cat, curation.Query(state="unreviewed", sort="file name")).records]
    assert len(order) == 4
    assert curation.next_unreviewed(cat, query, order[0]) == order[1]
    assert curation.next_unreviewed(cat, query, order[-1]) == order[0]  # wraps to the start
    assert curation.next_unreviewed(cat, query, None) == order[0]


def test_bulk_approve_by_filter_skips_uncaptioned(curated: Runtime) -> None:
    cat = curated.catalog
    ids = curation.matching_ids(cat, curation.Query(state="unreviewed"))
    report = bulk.bulk_review(cat, ids, "approved", author="bulk")
    assert report.changed == 2 and len(report.skipped) == 2  # two uncaptioned images cannot be approved
    assert "2 changed of 4 selected" in report.summary()
    assert curation.state_counts(cat)["approved"] == 3
    assert cat.history(ids_by_name(curated)["red_sedan.jpg"])[0].author == "bulk"
    again = bulk.bulk_review(cat, ids, "approved")
    assert again.changed == 0 and again.unchanged == 2


def test_bulk_delete_removes_images_from_search_at_once(curated: Runtime) -> None:
    ids = ids_by_name(curated)
    gone = ids["red_sedan.jpg"]
    before = curated.search(text="a car", k=6)
    assert gone in [r.id for r in before.results]
    report = bulk.bulk_delete(curated.catalog, curated.store, [gone, "f" * 64])
    assert report.changed == 1 and report.missing == 1
    after = curated.search(text="a car", k=6)
    assert len(after.results) == 5 and gone not in [r.id for r in after.results]
    assert gone not in curated.store.load()
    assert Path(curated.catalog.get(gone, include_deleted=True).path).exists()  # file kept
    assert curated.catalog.history(gone)  # history kept


def test_bulk_delete_removes_only_uploaded_files_when_asked(curated: Runtime, tmp_path: Path) -> None:
    uploads = curated.settings.uploads_dir
    outside = ids_by_name(curated)["white_van.png"]
    report = bulk.bulk_delete(curated.catalog, curated.store, [outside], delete_files_under=uploads)
    assert Path(curated.catalog.get(outside, include_deleted=True).path).exists()
    assert "1 file(s) outside the uploads folder were kept" in report.summary()


def test_bulk_approve_skips_images_changed_since_the_reviewer_saw_them(curated: Runtime) -> None:
    cat = curated.catalog
    ids = ids_by_name(curated)
    picked = [ids["red_sedan.jpg"], ids["blue_pickup.png"]]
    seen = {i: cat.get(i).version for i in picked}
    rewritten = cat.get(ids["blue_pickup.png"])  # another editor rewrites one caption after the selection
    cat.set_caption(rewritten.id, "a blue tow truck", "human", expected_version=rewritten.version)
    report = bulk.bulk_review(cat, picked, "approved", author="app", expected_versions=seen)
    assert report.changed == 1
    assert report.skipped == [(ids["blue_pickup.png"], bulk.CHANGED_SINCE)]
    assert "1 changed of 2 selected, 1 skipped" in report.summary()
    assert cat.get(ids["blue_pickup.png"]).review_state == "unreviewed"  # nobody reviewed the new text


def test_undo_bulk_takes_back_a_whole_approval_in_one_step(curated: Runtime) -> None:
    cat = curated.catalog
    ids = ids_by_name(curated)
    picked = [ids["red_sedan.jpg"], ids["blue_pickup.png"]]
    first = bulk.bulk_review(cat, [ids["green_van.webp"], ids["black_pickup.jpeg"]], "rejected", author="app")
    report = bulk.bulk_review(cat, picked, "approved", author="app")
    assert report.action_id and report.action_id != first.action_id
    newest = bulk.bulk_actions(cat)
    assert [a.action for a in newest[:2]] == ["approve", "reject"]
    assert newest[0].undoable and not newest[1].undoable and newest[0].count == 2
    edited = cat.get(ids["red_sedan.jpg"])  # edited after the bulk: the undo leaves it alone
    cat.set_caption(edited.id, "a red sedan, edited", "human", review_state="approved", expected_version=edited.version)

    with pytest.raises(InvalidInputError, match="Only the newest"):
        bulk.undo_bulk(cat, curated.store, first.action_id)
    undone = bulk.undo_bulk(cat, curated.store, author="app")
    assert undone.changed == 1 and [i for i, _ in undone.skipped] == [ids["red_sedan.jpg"]]
    assert cat.get(ids["blue_pickup.png"]).review_state == "unreviewed"
    assert cat.get(ids["red_sedan.jpg"]).caption == "a red sedan, edited"
    assert len([h for h in cat.history(ids["blue_pickup.png"])]) == 3  # set, approved, undone: history kept
    with pytest.raises(InvalidInputError, match="already undone"):
        bulk.undo_bulk(cat, curated.store, report.action_id)
    bulk.undo_bulk(cat, curated.store, first.action_id)  # now the newest open one
    assert cat.get(ids["green_van.webp"]).review_state == "approved"  # the reject was undone next, in order


def test_undo_bulk_delete_returns_images_to_search(curated: Runtime) -> None:
    ids = ids_by_name(curated)
    gone = [ids["red_sedan.jpg"], ids["white_van.png"]]
    report = bulk.bulk_delete(curated.catalog, curated.store, gone, author="app")
    assert report.action_id and not set(gone) & {r.id for r in curated.search(text="a car", k=6).results}
    undone = bulk.undo_bulk(curated.catalog, curated.store, report.action_id)
    assert undone.changed == 2
    assert set(gone) <= {r.id for r in curated.search(text="a car", k=6).results}
    assert curated.catalog.get(gone[0]).review_state  # live again
    with pytest.raises(InvalidInputError, match="No bulk action to undo"):
        bulk.undo_bulk(curated.catalog, curated.store)


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return path


def test_import_preview_changes_nothing_then_apply_imports(curated: Runtime, car_folder: Path, tmp_path: Path) -> None:
    cat = curated.catalog
    ids = ids_by_name(curated)
    csv_path = write_csv(
        tmp_path / "captions.csv",
        [
            ["file", "id", "caption", "color", "notes"],
            ["white_van.png", "", "a white delivery van", "white", "x"],  # relative to the ingested folder
            [str(car_folder / "sub" / "yellow_sedan.bmp"), "", "a yellow sedan", "", ""],  # absolute
            ["", ids["red_sedan.jpg"][:12], "a red saloon car", "", ""],  # id prefix
            ["sub/green_van.webp", "", "not a van", "", ""],  # a person wrote this one
            ["missing.jpg", "", "ghost", "", ""],
            ["blue_pickup.png", "", "a blue pickup truck", "", ""],  # unchanged
            ["white_van.png", "", "duplicate row", "", ""],
            ["sub/deeper/black_pickup.jpeg", "", "", "", ""],
        ],
    )
    rows, ignored = read_import_file(csv_path)
    preview = preview_import(cat, rows, ignored)
    assert {c.label for c in preview.changes} == {
        "white_van.png",
        str(car_folder / "sub" / "yellow_sedan.bmp"),
        ids["red_sedan.jpg"][:12],
    }
    assert preview.unchanged == 1 and ignored == ["notes"]
    reasons = {label: reason for _line, label, reason in preview.problems}
    assert reasons["sub/green_van.webp"] == "kept the caption a person wrote"
    assert "no ingested image" in reasons["missing.jpg"]
    assert "same image as line 2" in reasons["white_van.png"]
    assert reasons["sub/deeper/black_pickup.jpeg"] == "empty caption"
    assert "3 caption(s) will change" in preview.summary()
    assert cat.get(ids["white_van.png"]).caption is None  # preview changed nothing

    cat.set_caption(ids["red_sedan.jpg"], "edited meanwhile", "human")  # changes after the preview...
    report = apply_import(cat, preview)
    assert report.changed == 2 and report.skipped[0][1].startswith("changed since the preview")
    white = cat.get(ids["white_van.png"])
    assert white.caption == "a white delivery van" and white.caption_source == "imported"
    assert white.review_state == "unreviewed" and white.attributes == {"color": "white"}
    assert cat.get(ids["red_sedan.jpg"]).caption == "edited meanwhile"


def test_import_reads_jsonl_with_nested_attributes_and_refuses_bad_files(curated: Runtime, tmp_path: Path) -> None:
    ids = ids_by_name(curated)
    path = tmp_path / "caps.jsonl"
    path.write_text(
        json.dumps({"id": ids["white_van.png"], "caption": "white van", "attributes": {"viewpoint": "side"}}) + "\n\n"
    )
    rows, _ = read_import_file(path)
    preview = preview_import(curated.catalog, rows)
    assert preview.changes[0].new_attributes == {"viewpoint": "side"}
    (tmp_path / "bad.jsonl").write_text("{not json}\n")
    with pytest.raises(InvalidInputError, match="bad.jsonl:1"):
        read_import_file(tmp_path / "bad.jsonl")
    write_csv(tmp_path / "bad.csv", [["path", "text"], ["a", "b"]])
    with pytest.raises(InvalidInputError, match="caption column"):
        read_import_file(tmp_path / "bad.csv")


def png_bytes(color: str, seed: int) -> bytes:
    buf = io.BytesIO()
    draw_car(color, "van", seed=seed).save(buf, format="PNG")
    return buf.getvalue()


def test_zip_upload_ingests_images_and_refuses_traversal_and_bombs(runtime: Runtime, tmp_path: Path) -> None:
    archive = tmp_path / "batch.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("cars/one.png", png_bytes("red", 11))
        zf.writestr("two.png", png_bytes("blue", 12))
        zf.writestr("dup.png", png_bytes("blue", 12))  # same bytes as two.png
        zf.writestr("../escape.png", png_bytes("green", 13))
        zf.writestr("/abs/evil.png", png_bytes("green", 14))
        zf.writestr("notes.txt", "hello")
        zf.writestr("bomb.png", b"\0" * 5_000_000)  # compresses ~1000:1
    single = tmp_path / "single.png"
    single.write_bytes(png_bytes("white", 15))
    seen: list[tuple[int, int]] = []
    report = add_uploads(runtime, [archive, single], progress=lambda d, t, m: seen.append((d, t)))
    assert report.ingest.added == 3 and report.ingest.present == 1
    assert report.removed_duplicates == 1 and seen
    refused = dict(report.refused)
    assert set(refused) == {"../escape.png", "/abs/evil.png", "notes.txt", "bomb.png"}
    assert "zip bomb" in refused["bomb.png"]
    assert not (tmp_path / "escape.png").exists() and not Path("/abs/evil.png").exists()
    uploads = runtime.settings.uploads_dir.resolve()
    for record in runtime.catalog.get_many(runtime.catalog.ids()).values():
        assert Path(record.path).resolve().is_relative_to(uploads) and Path(record.path).exists()
    assert len(runtime.index()) == 3  # embedded and searchable


def test_safe_member_path_rejects_unsafe_names() -> None:
    assert str(safe_member_path("a/b.png")) == "a/b.png"
    for bad in ("../x.png", "a/../../x.png", "/etc/x.png", "C:/x.png", "a\\..\\..\\x.png", ".hidden/x.png", ""):
        assert safe_member_path(bad) is None, bad


def test_corrupt_or_encrypted_zip_members_are_refused_and_the_rest_extracted(tmp_path: Path) -> None:
    from carmatch.ingest.uploads import UploadReport, extract_zip

    archive = tmp_path / "mixed.zip"
    good, broken = png_bytes("red", 21), png_bytes("blue", 22)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("broken.png", broken)
        zf.writestr("locked.png", png_bytes("green", 23))
        zf.writestr("good.png", good)
    raw = bytearray(archive.read_bytes())
    central = raw.index(b"PK\x01\x02", raw.index(b"PK\x01\x02") + 4)  # locked.png's central directory entry
    raw[central + 8] |= 0x1  # marked encrypted: zipfile wants a password to read it
    start = 30 + len("broken.png")  # the first member's deflate data follows its local header
    for i in range(start + 2, start + 40):
        raw[i] ^= 0xFF
    archive.write_bytes(bytes(raw))
    report = UploadReport(folder=tmp_path)
    extracted = extract_zip(archive, tmp_path / "out", 10_000_000, report)
    assert [p.name for p in extracted] == ["good.png"] and extracted[0].read_bytes() == good
    refused = dict(report.refused)
    assert set(refused) == {"broken.png", "locked.png"}
    assert "corrupt" in refused["broken.png"] and "encrypted" in refused["locked.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]  # no temp files left


def test_zip_over_the_total_limit_is_refused_whole_and_leaves_no_files(tmp_path: Path) -> None:
    from carmatch.ingest.uploads import UploadReport, extract_zip

    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n in range(3):
            buf = io.BytesIO()
            draw_car("red", "van", seed=n).save(buf, format="PNG")
            zf.writestr(f"car{n}.png", buf.getvalue())
    one_image = len(zipfile.ZipFile(archive).read("car0.png"))
    out = tmp_path / "out"
    with pytest.raises(InvalidInputError, match="expands to more than"):
        extract_zip(archive, out, 10_000_000, UploadReport(folder=tmp_path), max_total_bytes=int(one_image * 1.5))
    assert not [p for p in out.rglob("*") if p.is_file()]
