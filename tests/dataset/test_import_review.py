"""Importing captions never undoes review work silently: attribute-only rows keep approvals; caption changes say so."""

from __future__ import annotations

from pathlib import Path

from carmatch.catalog import ImageRecord
from carmatch.dataset import import_captions as imports
from carmatch.runtime import Runtime


def approved_red_sedan(runtime: Runtime, car_folder: Path) -> ImageRecord:
    runtime.ingestor().ingest_folder(car_folder)
    record = runtime.catalog.find_by_path(str(car_folder / "red_sedan.jpg"))
    assert record is not None
    runtime.catalog.set_caption(record.id, "a red sedan", "claude-live", model="claude-x", prompt_version="v1")
    runtime.catalog.set_review_state(record.id, "approved", author="reviewer")
    return runtime.catalog.get(record.id)


def preview(runtime: Runtime, folder: Path, text: str) -> imports.ImportPreview:
    csv = folder / "import.csv"
    csv.write_text(text)
    rows, ignored = imports.read_import_file(csv)
    return imports.preview_import(runtime.catalog, rows, ignored)


def test_import_changing_only_attributes_keeps_approval_and_source(
    runtime: Runtime, car_folder: Path, tmp_path: Path
) -> None:
    before = approved_red_sedan(runtime, car_folder)
    plan = preview(runtime, tmp_path, "file,caption,color,make\nred_sedan.jpg,a red sedan,red,volvo\n")
    assert len(plan.changes) == 1 and plan.approvals_reset() == []
    assert "return to unreviewed" not in plan.summary()
    report = imports.apply_import(runtime.catalog, plan)
    after = runtime.catalog.get(before.id)
    assert report.changed == 1
    assert after.review_state == "approved" and after.caption == "a red sedan"
    assert (after.caption_source, after.caption_model, after.prompt_version) == ("claude-live", "claude-x", "v1")
    assert after.attributes["make"] == "volvo" and after.attributes["color"] == "red"


def test_import_changing_an_approved_caption_lists_it_in_the_preview(
    runtime: Runtime, car_folder: Path, tmp_path: Path
) -> None:
    before = approved_red_sedan(runtime, car_folder)
    plan = preview(runtime, tmp_path, "file,caption\nred_sedan.jpg,a dark red saloon\n")
    assert [c.image_id for c in plan.approvals_reset()] == [before.id]
    assert "1 approved caption(s) will return to unreviewed:\n  red_sedan.jpg" in plan.summary()
    imports.apply_import(runtime.catalog, plan)
    after = runtime.catalog.get(before.id)
    assert (after.caption, after.review_state, after.caption_source) == ("a dark red saloon", "unreviewed", "imported")
