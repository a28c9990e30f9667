"""The page shown when the data cannot be opened at start, in Chromium: a notice for visitors, the fix for admins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from carmatch.config import Settings
from carmatch.errors import StorageError
from carmatch.startup import StartupFault
from tests.browser.conftest import DESKTOP, PASSWORD, PHONE, open_page, screenshot
from tests.conftest import isolate_environment

SECRET_HOME = "/srv/private-data/carmatch"


@pytest.fixture(scope="module")
def fault_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app as app.py builds it for a corrupt catalog, served on 127.0.0.1."""
    with pytest.MonkeyPatch.context() as mp:
        isolate_environment(mp, tmp_path_factory.mktemp("fault-app"))  # importing app opens no real home
        import app
    from carmatch.ui import startup_fault

    error = StorageError(
        f"The catalog {SECRET_HOME}/carmatch.db is corrupt or truncated (file is not a database).",
        hint="Restore the last backup (copy carmatch.db.bak over it) or rebuild with `carmatch ingest`.",
    )
    fault = StartupFault(error, Settings(home=Path(SECRET_HOME), admin_password=PASSWORD))
    demo = startup_fault.build(fault, app.HEADER)
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, css=app.CSS)
    try:
        yield demo.local_url
    finally:
        demo.close()


def test_visitors_read_a_plain_notice_and_an_admin_reads_the_fix(browser: Browser, fault_url: str) -> None:
    page = open_page(browser, fault_url, PHONE)
    expect(page.locator("#search-status")).to_contain_text("Search is unavailable right now")
    assert SECRET_HOME not in page.content()
    screenshot(page, "startup-fault-phone")
    page.context.close()

    page = open_page(browser, fault_url, DESKTOP, tab="Admin")
    page.locator("#fault-password input").fill("wrong")
    page.locator("#fault-unlock").click()
    expect(page.locator("#fault-access")).to_contain_text("Wrong admin password")
    assert SECRET_HOME not in page.content()
    page.locator("#fault-password input").fill(PASSWORD)
    page.locator("#fault-unlock").click()
    expect(page.locator("#fault-details")).to_contain_text(f"{SECRET_HOME}/carmatch.db is corrupt or truncated")
    expect(page.locator("#fault-details")).to_contain_text("Restore the last backup")
    expect(page.locator("#fault-password input")).to_have_value("")
    page.context.close()
