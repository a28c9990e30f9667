"""The Training tab in Chromium: what appears before a run, cancel points to Resume, a resumed run keeps its curve."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from carmatch.training import registry
from tests.browser.conftest import DESKTOP, PHONE, Served, open_page, screenshot, unlock

STATUS = "#train-status"
CANCELLED = "Cancelled; its checkpoint is kept"
CANCEL_MS = 90_000  # a run stops after its current step; with the other test worker busy that can take a while


def shown_run(page: Page) -> str:
    """The run the status line names, read once the line holds one (the timer redraws it every 2 s)."""
    found = page.wait_for_function(
        "() => { const m = /Run (\\S+):/.exec(document.querySelector('#train-status')?.innerText || '');"
        " return m && m[1]; }"
    )
    return str(found.json_value())


def test_resumed_run_keeps_its_curve_and_log(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP, tab="Training")
    expect(page.locator(STATUS)).to_contain_text("Unlock training")  # a locked visitor sees no runs, logs or paths
    expect(page.get_by_text("test split: before → after")).to_have_count(0)
    unlock(page, "train")
    expect(page.locator(STATUS)).to_contain_text("No run yet")  # says what will appear, no placeholder table
    page.get_by_label("epochs", exact=True).fill("500")
    page.get_by_label("batch size", exact=True).fill("4")
    expect(page.locator("#model-pick input")).to_have_value("base")  # the picker shows the active model
    page.get_by_role("button", name="Start training").click()
    expect(page.locator(STATUS)).to_contain_text("step")
    bar = page.locator("#train-progress [role=progressbar]")  # a real bar beside Start, with steps and ETA
    expect(bar).to_be_visible()
    expect(bar).to_contain_text(re.compile(r"step \d+ of \d+"))
    expect(page.locator("#train-recall .vega-embed")).to_be_visible()  # the base model's recall, epoch 0
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.locator(STATUS)).to_contain_text(CANCELLED, timeout=CANCEL_MS)
    expect(page.locator(STATUS)).not_to_contain_text("python -m admin")
    run_id = shown_run(page)
    first_log = page.locator("#train-log textarea").input_value().splitlines()[0]
    screenshot(page, "training-desktop")

    page.get_by_label("resume an unfinished run").click()
    page.get_by_role("option", name=run_id).click()
    page.get_by_role("button", name="Resume", exact=True).click()
    expect(page.locator(STATUS)).to_contain_text("running")
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.locator(STATUS)).to_contain_text(CANCELLED, timeout=CANCEL_MS)
    expect(page.locator("#train-recall .vega-embed")).to_be_visible()  # the earlier curve is still drawn
    log = page.locator("#train-log textarea")
    expect(log).to_have_value(re.compile("^" + re.escape(first_log)))
    assert log.input_value().count(f"run {run_id} started") == 2  # both sessions, oldest first
    at_bottom = "box => box.scrollTop + box.clientHeight >= box.scrollHeight - 2"
    page.wait_for_function(f"() => ({at_bottom})(document.querySelector('#train-log textarea'))")  # follows the newest
    page.context.close()


def test_training_tab_at_phone_size(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, PHONE, tab="Training")
    expect(page.locator(STATUS)).to_be_visible()
    screenshot(page, "training-phone")
    page.context.close()


def test_caption_views_and_hard_negatives_are_chosen_in_the_tab_and_kept_with_the_run(
    browser: Browser, served: Served
) -> None:
    page = open_page(browser, served.url, DESKTOP, tab="Training")
    unlock(page, "train")
    views = page.get_by_label("caption views")
    expect(views).to_have_value("full caption + attribute descriptions (1:1)")  # the run config's default
    views.fill("colour")  # a typed mix the run config cannot read is refused by its label
    views.press("Enter")
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text(re.compile("caption views 'colour'")).first).to_be_visible()

    views.click()
    page.get_by_role("option", name="mostly full caption (3:1)").click()
    page.get_by_label("hard negatives", exact=True).fill("0")
    page.get_by_label("epochs", exact=True).fill("500")
    page.get_by_label("batch size", exact=True).fill("4")
    expect(page.locator("#model-pick input")).to_have_value("base")  # the picker shows the active model
    page.get_by_role("button", name="Start training").click()
    expect(page.locator(STATUS)).to_contain_text("step")
    bar = page.locator("#train-progress [role=progressbar]")  # a real bar beside Start, with steps and ETA
    expect(bar).to_be_visible()
    expect(bar).to_contain_text(re.compile(r"step \d+ of \d+"))
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.locator(STATUS)).to_contain_text(CANCELLED, timeout=CANCEL_MS)
    run_id = shown_run(page)
    config = registry.get_model(served.runtime.catalog, run_id).config
    assert (config["caption_views"], config["hard_negatives"]) == ("full:3,attributes:1", 0)
    page.context.close()
