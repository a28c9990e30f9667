"""In a real browser: unlock the Dataset tab, edit one caption, find the new caption in a Search result.

Drives Debian's chromium (``apt-get install chromium``; ``.ci/run`` installs it) with Playwright.
The test is skipped only when /usr/bin/chromium is absent, and never under ``.ci/run``
(``CARMATCH_REQUIRE_BROWSER=1``), so CI cannot pass without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from carmatch.runtime import Runtime

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
PASSWORD = "browser-test-password"
NEW_CAPTION = "a purple zeppelin shaped roadster"
TIMEOUT_MS = 30_000


@pytest.fixture
def served(runtime: Runtime, car_folder: Path) -> str:
    """The app on 127.0.0.1 over an ingested collection with an admin password; yields its URL."""
    import app

    runtime.settings = runtime.settings.with_overrides(admin_password=PASSWORD)
    runtime.ingestor().ingest_folder(car_folder)
    demo = app.build_demo(runtime)
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        yield demo.local_url
    finally:
        demo.close()


@pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CARMATCH_REQUIRE_BROWSER"),
    reason=f"chromium is not installed at {CHROMIUM} (apt-get install chromium)",
)
def test_caption_edited_in_dataset_tab_shows_up_in_search(served: str, runtime: Runtime) -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(served)
            page.get_by_role("tab", name="Dataset").click()

            page.locator("#dataset-password input").fill("wrong")
            page.locator("#dataset-unlock").click()
            expect(page.locator("#dataset-access")).to_contain_text("Wrong admin password")
            page.locator("#dataset-password input").fill(PASSWORD)
            page.locator("#dataset-unlock").click()
            expect(page.locator("#dataset-access")).to_contain_text("unlocked")

            page.locator("#dataset-grid button.thumbnail-item").first.click()
            caption = page.locator("#dataset-caption textarea")
            expect(page.locator("#dataset-meta")).to_contain_text("state")
            caption.fill(NEW_CAPTION)
            caption.press("Enter")  # saves, approves and moves to the next unreviewed image
            expect(page.locator("#dataset-message")).to_contain_text("Approved")

            page.get_by_role("tab", name="Search").click()
            page.locator("#search-text textarea").fill("purple zeppelin")
            page.locator("#search-button").click()
            expect(page.locator("#results")).to_contain_text(NEW_CAPTION)
        finally:
            browser.close()
    records = runtime.catalog.get_many(runtime.catalog.ids()).values()
    edited = [(r.review_state, r.caption_source) for r in records if r.caption == NEW_CAPTION]
    assert edited == [("approved", "human")]
