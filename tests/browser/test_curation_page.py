"""The Dataset tab's curation panel in Chromium: likely mistakes with reasons, the map and its selection."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import DESKTOP, SCREENSHOTS, Served, open_page, unlock

SELECT_FIRST_POINTS = """(count) => {
  const plot = document.querySelector('#curation-map .js-plotly-plot');
  const points = plot.data.flatMap((trace) => trace.customdata.map((d) => ({customdata: d}))).slice(0, count);
  plot.emit('plotly_selected', {points});
  return points.map((p) => p.customdata[0]);
}"""


def panel_screenshot(page: Page, name: str) -> None:
    """The curation panel alone (the docs show it), under ``SCREENSHOTS``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#curation").screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def test_reviewer_finds_likely_mistakes_and_selects_a_cluster_on_the_map(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP, tab="Dataset")
    unlock(page)
    page.locator("#curation").get_by_text("Curation: likely mistakes, near-duplicates, map").click()
    page.locator("#curation-suspects-run").click()
    expect(page.locator("#curation-suspects-note")).to_contain_text("most likely wrong first")
    first = page.locator("#curation-suspects .thumbnail-item").first
    expect(first).to_be_visible()
    expect(first).to_contain_text(re.compile(r"\d\.\d\d · .*(fit|captions better|attribute says)"))  # the reason
    expect(page.locator("#curation-why")).to_contain_text("why")  # and the whole reason in the table below
    first.click()  # opens in the editor beside the grid
    expect(page.locator("#dataset-meta")).to_contain_text("version")
    panel_screenshot(page, "curation-suspects")

    page.get_by_role("tab", name="Map").click()
    page.locator("#curation-map-compute").click()
    expect(page.locator("#curation-map .js-plotly-plot")).to_be_visible()
    expect(page.locator("#curation-map")).to_contain_text("coloured by color")
    page.wait_for_function("() => typeof document.querySelector('#curation-map .js-plotly-plot').emit === 'function'")
    page.wait_for_function("() => window.carmatchMapHooks === true")
    chosen = page.evaluate(SELECT_FIRST_POINTS, 5)
    expect(page.locator("#curation-map-tab")).to_contain_text("5 point(s) selected")
    expect(page.locator("#curation-map-selected .thumbnail-item")).to_have_count(5)
    assert len(set(chosen)) == 5
    panel_screenshot(page, "curation-map")
    page.context.close()
