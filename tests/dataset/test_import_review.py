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


def preview_reset(runtime: Runtime, folder: Path, text: str, reset: bool) -> imports.ImportPreview:
    csv = folder / "import.csv"
    csv.write_text(text)
    rows, ignored = imports.read_import_file(csv)
    return imports.preview_import(runtime.catalog, rows, ignored, reset_reviewed=reset)


def approved_and_rejected(runtime: Runtime, car_folder: Path) -> tuple[ImageRecord, ImageRecord]:
    approved = approved_red_sedan(runtime, car_folder)
    other = runtime.catalog.find_by_path(str(car_folder / "blue_pickup.png"))
    assert other is not None
    runtime.catalog.set_caption(other.id, "a blue pickup", "claude-live", model="claude-x", prompt_version="v1")
    runtime.catalog.set_review_state(other.id, "rejected", author="reviewer")
    return approved, runtime.catalog.get(other.id)


CHANGED_BOTH = "file,caption\nred_sedan.jpg,a dark red saloon\nblue_pickup.png,a navy truck\n"


def test_import_keeps_approved_and_rejected_decisions_by_default_and_says_so_per_state(
    runtime: Runtime, car_folder: Path, tmp_path: Path
) -> None:
    approved, rejected = approved_and_rejected(runtime, car_folder)
    plan = preview_reset(runtime, tmp_path, CHANGED_BOTH, reset=False)
    assert plan.changes == [] and len(plan.kept_reviewed) == 2
    summary = plan.summary()
    assert "1 approved caption(s) keep their review decision" in summary and "red_sedan.jpg" in summary
    assert "1 rejected caption(s) keep their review decision" in summary and "blue_pickup.png" in summary
    assert "--reset-reviewed" in summary
    imports.apply_import(runtime.catalog, plan)
    assert runtime.catalog.get(approved.id) == approved and runtime.catalog.get(rejected.id) == rejected


def test_import_with_reset_reviewed_lists_both_states_that_return_to_unreviewed(
    runtime: Runtime, car_folder: Path, tmp_path: Path
) -> None:
    approved, rejected = approved_and_rejected(runtime, car_folder)
    plan = preview_reset(runtime, tmp_path, CHANGED_BOTH, reset=True)
    summary = plan.summary()
    assert "1 approved caption(s) will return to unreviewed:\n  red_sedan.jpg" in summary
    assert "1 rejected caption(s) will return to unreviewed:\n  blue_pickup.png" in summary
    imports.apply_import(runtime.catalog, plan)
    after = runtime.catalog.get(approved.id)
    assert (after.caption, after.review_state, after.caption_source) == ("a dark red saloon", "unreviewed", "imported")
    assert runtime.catalog.get(rejected.id).review_state == "unreviewed"


def test_ingest_captions_keeps_review_decisions_unless_told_and_reports_per_state(
    runtime: Runtime, car_folder: Path, tmp_path: Path
) -> None:
    approved, rejected = approved_and_rejected(runtime, car_folder)
    csv = tmp_path / "captions.csv"
    csv.write_text(CHANGED_BOTH)
    ingestor = runtime.ingestor()
    report = ingestor.ingest_folder(car_folder, csv)
    assert report.reviews_kept == {"approved": 1, "rejected": 1} and report.captions_imported == 0
    assert "1 approved image(s) keep their review decision" in report.summary()
    assert runtime.catalog.get(approved.id).caption == "a red sedan"
    ingestor.reset_reviewed = True
    report = ingestor.ingest_folder(car_folder, csv)
    assert report.reviews_reset == {"approved": 1, "rejected": 1}
    assert "1 rejected image(s) got the CSV's caption and returned to unreviewed." in report.summary()
    assert runtime.catalog.get(rejected.id).caption == "a navy truck"


def test_the_apps_import_preview_keeps_decisions_unless_the_box_is_ticked(
    runtime: Runtime, car_folder: Path, tmp_path: Path
) -> None:
    from carmatch.ui import dataset_files_actions as actions

    approved_and_rejected(runtime, car_folder)
    admin = runtime.settings.with_overrides(admin_password="pw")
    runtime.settings = admin
    csv = tmp_path / "import.csv"
    csv.write_text(CHANGED_BOTH)
    summary, table, plan = actions.import_preview(runtime, "pw", str(csv))
    assert plan == [] and "1 rejected caption(s) keep their review decision" in summary
    summary, table, plan = actions.import_preview(runtime, "pw", str(csv), True)
    assert len(plan) == 2 and "1 rejected caption(s) will return to unreviewed" in summary
