"""The Dataset tab in Chromium: locked until unlocked, edits reach Search, refusals keep the editor readable."""

from __future__ import annotations

import re
import tempfile
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.sync_api import Browser, Page, expect

from carmatch.dataset import curation
from carmatch.runtime import Runtime
from carmatch.ui.dataset_files_actions import DOWNLOAD_PREFIX
from tests.browser.conftest import DESKTOP, PASSWORD, PHONE, Served, open_page, screenshot, unlock

NEW_CAPTION = "a purple zeppelin shaped roadster"
FILTER_TEXT = "#dataset-filter-text textarea"


def open_in_editor(page: Page, caption: str) -> None:
    """Filter the grid to the one image with ``caption`` and open it in the editor."""
    expect(page.locator("#dataset-page-info")).to_contain_text("matching")  # the grid's first page is in
    page.locator(FILTER_TEXT).fill(caption)
    page.locator(FILTER_TEXT).press("Enter")
    expect(page.locator("#dataset-page-info")).to_contain_text("1 matching")
    page.locator("#dataset-grid button.thumbnail-item").first.click()


def test_caption_edited_in_dataset_tab_shows_up_in_search(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP, tab="Dataset")
    expect(page.locator("#dataset-save")).to_be_disabled()  # locked means visibly locked
    page.locator("#dataset-password input").fill("wrong")
    page.locator("#dataset-unlock").click()
    expect(page.locator("#dataset-access")).to_contain_text("Wrong admin password")
    unlock(page)
    expect(page.locator("#dataset-save")).to_be_enabled()

    open_in_editor(page, "a red sedan car")
    caption = page.locator("#dataset-caption textarea")
    expect(page.locator("#dataset-meta .cm-badge")).to_have_text(re.compile("^(unreviewed|approved|rejected)$"))
    caption.fill(NEW_CAPTION)
    caption.press("Enter")  # saves, approves and moves to the next unreviewed image
    expect(page.locator("#dataset-message")).to_contain_text("Approved")
    screenshot(page, "dataset-desktop")

    page.get_by_role("tab", name="Search").click()
    page.locator("#search-filters").get_by_text("Filters (none active)").click()
    page.locator("#search-filters").get_by_label("color", exact=True).click()
    page.get_by_role("option", name="red (1)").click()  # the edit kept the image's attributes
    page.locator("#search-text textarea").fill("purple zeppelin")
    page.locator("#search-button").click()
    expect(page.locator("#results")).to_contain_text(NEW_CAPTION)
    page.context.close()
    records = served.runtime.catalog.get_many(served.runtime.catalog.ids()).values()
    edited = [(r.review_state, r.caption_source) for r in records if r.caption == NEW_CAPTION]
    assert edited == [("approved", "human")]


def test_refused_save_keeps_caption_and_fields_readable(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP, tab="Dataset")
    unlock(page)
    open_in_editor(page, "a green van car")
    expect(page.locator("#dataset-meta .cm-badge")).to_have_text(re.compile("^(unreviewed|approved|rejected)$"))
    typed = "my careful caption that must not be lost"
    page.locator("#dataset-caption textarea").fill(typed)
    runtime: Runtime = served.runtime
    settings = runtime.settings
    runtime.settings = settings.with_overrides(admin_password="changed-meanwhile")  # the next write is refused
    try:
        page.locator("#dataset-save").click()
        expect(page.locator("#dataset-message")).to_contain_text("Wrong admin password")
    finally:
        runtime.settings = settings
    expect(page.locator("#dataset-caption textarea")).to_have_value(typed)
    expect(page.locator("#dataset-attr-color textarea")).not_to_have_value("")
    expect(page.locator("#dataset-image img")).to_be_visible()
    expect(page.get_by_text("Error", exact=True)).to_have_count(0)  # no red overlays on the fields
    screenshot(page, "dataset-refused")
    page.context.close()


def test_bulk_on_everything_matching_asks_for_confirmation(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP, tab="Dataset")
    unlock(page)
    page.locator(FILTER_TEXT).fill("van car")
    page.locator(FILTER_TEXT).press("Enter")
    expect(page.locator("#dataset-page-info")).to_contain_text("2 matching")
    page.get_by_role("button", name="Bulk actions").click()
    page.get_by_label("everything matching the filters").check()
    page.locator("#dataset-bulk-run").click()
    report = page.locator("#bulk-report textarea")
    expect(report).to_have_value(
        "❌ This would approve all 2 image(s) matching the filters: tick 'confirm' and run again."
    )
    page.locator("#bulk-confirm input").check()
    page.locator("#dataset-bulk-run").click()
    expect(report).to_have_value(re.compile(r"^Approve: 2 changed of 2"))
    page.context.close()


def test_one_login_unlocks_dataset_and_training(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP, tab="Dataset")
    unlock(page)
    page.get_by_role("tab", name="Training").click()
    expect(page.locator("#train-access")).to_contain_text("unlocked")
    assert PASSWORD not in page.content()
    page.context.close()


def test_keyboard_shortcuts_are_shown_and_approve(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP, tab="Dataset")
    expect(page.locator("#dataset-keys")).to_contain_text("A approve · R reject · S skip")
    expect(page.locator("#dataset-keys")).to_contain_text("N / P next / previous image")
    unlock(page)
    open_in_editor(page, "a yellow sedan car")
    expect(page.locator("#dataset-meta")).to_contain_text("yellow_sedan.bmp")
    page.locator("#dataset-meta").click()  # focus outside any text box
    page.keyboard.press("r")
    expect(page.locator("#dataset-message")).to_contain_text("Rejected")
    records = served.runtime.catalog.get_many(served.runtime.catalog.ids()).values()
    assert [r.review_state for r in records if r.caption == "a yellow sedan car"] == ["rejected"]
    page.context.close()


def test_keys_n_and_p_move_to_the_next_and_previous_image(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP, tab="Dataset")
    expect(page.locator("#dataset-keys")).to_contain_text("N / P next / previous image")
    first, second = curation.matching_ids(served.runtime.catalog, curation.Query())[:2]
    page.locator("#dataset-grid button.thumbnail-item").first.click()
    meta = page.locator("#dataset-meta")
    expect(meta).to_contain_text(first[:12])
    meta.click()  # focus outside any text box: no admin password needed to look around
    page.keyboard.press("n")
    expect(meta).to_contain_text(second[:12])
    page.keyboard.press("p")
    expect(meta).to_contain_text(first[:12])
    page.keyboard.press("p")  # already the first: stays, and says so
    expect(page.locator("#dataset-message")).to_contain_text("first image matching the filters")
    expect(meta).to_contain_text(first[:12])
    page.context.close()


def test_history_dates_show_in_the_browsers_local_time(browser: Browser, served: Served) -> None:
    record = served.runtime.catalog.find_by_path(str((served.cars / "sub" / "deeper" / "black_pickup.jpeg").resolve()))
    assert record is not None
    stamp = datetime.fromisoformat(curation.detail(served.runtime.catalog, record.id).history[0].created_at)
    local = stamp.astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%d %H:%M")
    context = browser.new_context(viewport=DESKTOP, timezone_id="America/New_York")
    page = context.new_page()
    page.goto(served.url)
    page.get_by_role("tab", name="Dataset").click()
    open_in_editor(page, record.caption or "")
    history = page.locator("#dataset-history")
    expect(history).to_contain_text(local)  # New York time, not the catalog's UTC
    expect(history).not_to_contain_text(" UTC")
    assert local != stamp.strftime("%Y-%m-%d %H:%M")
    open_in_editor(page, "a blue pickup car")  # the table's next rows are converted too
    expect(history).to_contain_text("a blue pickup car")
    expect(history).to_contain_text(local[:10])
    expect(history).not_to_contain_text(" UTC")
    context.close()


def test_dataset_tab_at_phone_size_is_locked_and_readable(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, PHONE, tab="Dataset")
    expect(page.locator("#dataset-access")).to_contain_text("Read-only until you unlock")
    expect(page.locator("#dataset-approve")).to_be_disabled()
    screenshot(page, "dataset-phone")
    page.context.close()


def test_import_changing_only_attributes_keeps_approvals(browser: Browser, served: Served, tmp_path: Path) -> None:
    catalog = served.runtime.catalog
    record = catalog.find_by_path(str((served.cars / "white_van.png").resolve()))
    assert record is not None
    catalog.set_review_state(record.id, "approved", author="reviewer")
    csv = tmp_path / "attributes.csv"
    csv.write_text(f"file,caption,make\n{record.path},{record.caption},ford\n")
    page = open_page(browser, served.url, DESKTOP, tab="Dataset")
    unlock(page)
    page.get_by_text("Import captions (CSV / JSONL)").click()
    page.locator("#import-file input[type=file]").set_input_files(str(csv))
    page.locator("#import-preview-button").click()
    preview = page.locator("#import-preview textarea")
    expect(preview).to_have_value(re.compile(r"^1 row\(s\): 1 caption\(s\) will change"))
    assert "return to unreviewed" not in preview.input_value()
    page.locator("#import-apply").click()
    expect(page.locator("#import-report textarea")).to_have_value(re.compile(r"^Import: 1 changed of 1"))
    after = catalog.get(record.id)
    assert (after.review_state, after.caption, after.attributes.get("make")) == ("approved", record.caption, "ford")
    page.locator("#dataset-filter-make input").click()  # the make filter offers the imported value at once
    expect(page.get_by_role("option", name="ford")).to_be_visible()
    page.context.close()


def test_thumbnails_are_selected_for_bulk_actions_by_clicking_them(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP, tab="Dataset")
    unlock(page)
    page.locator(FILTER_TEXT).fill("pickup car")
    page.locator(FILTER_TEXT).press("Enter")
    expect(page.locator("#dataset-page-info")).to_contain_text("2 matching")
    expect(page.locator("#dataset-selected")).to_have_count(0)  # no separate list of id pills
    page.locator("#dataset-select-mode input").check()
    tiles = page.locator("#dataset-grid button.thumbnail-item")
    tiles.nth(0).click()
    expect(page.locator("#dataset-picked")).to_contain_text("1 selected")
    expect(tiles.nth(0)).to_have_attribute("data-picked", "yes")  # a 'picked' badge, drawn from the label
    tiles.nth(1).click()
    expect(page.locator("#dataset-picked")).to_contain_text("2 selected")
    tiles.nth(0).click()  # a second click unpicks
    expect(page.locator("#dataset-picked")).to_contain_text("1 selected")
    expect(tiles.nth(0)).to_have_attribute("data-picked", "no")
    expect(page.locator("#dataset-meta")).to_contain_text(
        "Select an image in the grid"
    )  # clicks picked, opened nothing
    page.get_by_role("button", name="Bulk actions").click()
    page.get_by_label("reject", exact=True).check()
    page.locator("#dataset-bulk-run").click()
    expect(page.locator("#bulk-report textarea")).to_have_value(re.compile(r"^Reject: 1 changed of 1 selected"))
    screenshot(page, "dataset-select-mode")
    page.context.close()


def test_shift_click_picks_a_range_of_thumbnails(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP, tab="Dataset")
    page.locator(FILTER_TEXT).fill(" car")
    page.locator(FILTER_TEXT).press("Enter")
    expect(page.locator("#dataset-page-info")).not_to_contain_text("60 matching")
    page.locator("#dataset-select-mode input").check()
    tiles = page.locator("#dataset-grid button.thumbnail-item")
    tiles.nth(0).click()
    expect(page.locator("#dataset-picked")).to_contain_text("1 selected")
    tiles.nth(3).click(modifiers=["Shift"])
    expect(page.locator("#dataset-picked")).to_contain_text("4 selected")
    for n in range(4):
        expect(tiles.nth(n)).to_have_attribute("data-picked", "yes")
    page.context.close()


def test_an_export_downloads_in_the_browser_and_leaves_no_copy_on_the_server(browser: Browser, served: Served) -> None:
    leftovers = Path(tempfile.gettempdir()).glob  # the app runs in this process: its temp folder is this one
    before = set(leftovers(f"{DOWNLOAD_PREFIX}*"))
    page = open_page(browser, served.url, DESKTOP, tab="Dataset")
    unlock(page)
    panel = page.locator("#dataset-export")
    panel.get_by_text("Export", exact=True).first.click()
    panel.get_by_label("csv").check()
    page.locator("#export-button").click()
    expect(page.locator("#export-report textarea")).to_have_value(re.compile("Exported"))
    with page.expect_download() as download:
        page.locator("#export-files a").first.click()
    assert Path(download.value.path()).read_text().startswith("id,file,caption")
    page.context.close()
    assert set(leftovers(f"{DOWNLOAD_PREFIX}*")) <= before  # the download copy went once Gradio had served it
    assert not (served.runtime.settings.home / "exports").exists()
