"""One app server and one Chromium for every browser test (session-scoped, so the suite stays fast).

Drives Debian's chromium (``apt-get install chromium``; ``.ci/run`` installs it) with Playwright.
Tests are skipped only when /usr/bin/chromium is absent, and never under ``.ci/run``
(``CARMATCH_REQUIRE_BROWSER=1``), so CI cannot pass without them. Gradio keeps an event stream
open: tests wait for elements, never for "networkidle". Screenshots go to ``SCREENSHOTS``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from carmatch.config import load_settings
from carmatch.dataset import curation
from carmatch.embedding.embedder import Embedder
from carmatch.runtime import Runtime
from tests.conftest import draw_car_folder, isolate_environment, tiny_model_environment
from tests.training_support import fill_with_cars

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
PASSWORD = "browser-test-password"
TIMEOUT_MS = 30_000
DESKTOP = {"width": 1400, "height": 1000}
PHONE = {"width": 390, "height": 844}
# Screenshots for a reviewer: every run writes them to build/screenshots/ (ignored by git; the README
# names it); `make screenshots` refreshes the README's copies in docs/screenshots/.
SCREENSHOTS = Path(
    os.environ.get("CARMATCH_SCREENSHOTS") or Path(__file__).resolve().parents[2] / "build" / "screenshots"
)

expect.set_options(timeout=TIMEOUT_MS)  # Gradio answers through a queue and a 2 s timer: allow for a busy machine

if not CHROMIUM.exists() and not os.environ.get("CARMATCH_REQUIRE_BROWSER"):
    pytest.skip(f"chromium is not installed at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@dataclass
class Served:
    """The running app: its URL, its Runtime and the folder of drawn cars it ingested."""

    url: str
    runtime: Runtime
    cars: Path


@pytest.fixture(scope="session")
def served(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: tuple[str, str], embedder: Embedder
) -> Iterator[Served]:
    """The app (with app.py's CSS) on 127.0.0.1 over 60 drawn cars (6 named + 54 approved) and an admin password."""
    import app

    folder = tmp_path_factory.mktemp("browser-app")
    with pytest.MonkeyPatch.context() as mp:
        isolate_environment(mp, folder)
        tiny_model_environment(mp, tiny_model)
        settings = load_settings().with_overrides(admin_password=PASSWORD)
    runtime = Runtime(settings, embedder=embedder)
    cars = draw_car_folder(folder / "cars")
    runtime.ingestor().ingest_folder(cars)
    label_cars(runtime, cars)
    fill_with_cars(runtime, folder / "fleet", seeds=3)  # 54 approved pairs: enough to split and train on
    demo = app.build_demo(runtime)
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, css=app.CSS)
    try:
        yield Served(demo.local_url, runtime, cars)
    finally:
        demo.close()
        runtime.close()


def label_cars(runtime: Runtime, cars: Path) -> None:
    """Give the 6 named cars a caption ("a red sedan car") and their colour and body as attributes."""
    for path in sorted(p for p in cars.rglob("*") if p.is_file()):
        record = runtime.catalog.find_by_path(str(path.resolve()))
        assert record is not None
        color, body = path.stem.split("_")
        attributes = {"color": color, "body_type": body}
        curation.save_caption(runtime.catalog, record.id, f"a {color} {body} car", attributes, record.version)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the session."""
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def open_page(browser: Browser, url: str, viewport: dict[str, int] = DESKTOP, tab: str = "Search") -> Page:
    """A fresh browser context (its own Gradio session) at ``viewport`` with ``tab`` open."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    expect(page.get_by_role("tab", name=tab)).to_be_visible()
    if "?" not in url and page.locator("#search-notes").count():  # the first loads are done: newest cars shown
        expect(page.locator("#search-notes")).to_contain_text("newest cars")
    if tab != "Search":
        page.get_by_role("tab", name=tab).click()
    return page


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot under ``SCREENSHOTS`` for a reviewer to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def unlock(page: Page, prefix: str = "dataset") -> None:
    """Unlock editing with the admin password in the tab whose password box has ``prefix``."""
    page.locator(f"#{prefix}-password input").fill(PASSWORD)
    page.locator(f"#{prefix}-unlock").click()
    expect(page.locator(f"#{prefix}-access")).to_contain_text("unlocked")


def searched(page: Page, text: str) -> None:
    """Wait until the search for ``text`` has answered: the page writes its query into the address bar last."""
    page.wait_for_function("(q) => new URL(window.location.href).searchParams.get('q') === q", arg=text)
