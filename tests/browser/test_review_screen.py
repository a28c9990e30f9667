"""The reviewer's screen in Chromium: editor beside the grid at 1366×768, badges, history diff, bulk undo,
N/P highlight, empty filters, links to a filter and an image."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from carmatch.dataset import curation
from tests.browser.conftest import PHONE, Served, open_page, screenshot, unlock

LAPTOP = {"width": 1366, "height": 768}
FILTER_TEXT = "#dataset-filter-text textarea"
TILES = "#dataset-grid button.thumbnail-item"


def filter_caption(page: Page, text: str, matching: str) -> None:
    """Type ``text`` into the caption filter and wait for the page info to say ``matching``."""
    expect(page.locator("#dataset-page-info")).to_contain_text("matching")
    page.locator(FILTER_TEXT).fill(text)
    page.locator(FILTER_TEXT).press("Enter")
    expect(page.locator("#dataset-page-info")).to_contain_text(matching)


def in_viewport(page: Page, selector: str) -> bool:
    """Whether the element is (or within a few seconds, once images and fonts settle, comes) wholly inside the
    window, with no scrolling."""
    try:
        page.wait_for_function(
            "(sel) => { const r = document.querySelector(sel).getBoundingClientRect();"
            " return r.width > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= window.innerHeight"
            " && r.right <= window.innerWidth; }",
            arg=selector,
            timeout=5_000,
        )
    except PlaywrightTimeoutError:
        return False
    return True


def test_editor_sits_beside_the_grid_and_fits_a_laptop_screen(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, LAPTOP, tab="Dataset")
    unlock(page)
    expect(page.locator(TILES).first).to_be_visible()
    page.locator(TILES).nth(7).click()  # a tile on the second row
    expect(page.locator("#dataset-meta .cm-badge")).to_be_visible()
    expect(page.locator("#dataset-image img")).to_be_visible()
    parts = ["#dataset-image", "#dataset-meta", "#dataset-caption", "#dataset-attr-color", "#dataset-attr-viewpoint"]
    parts += ["#dataset-save", "#dataset-approve", "#dataset-reject", "#dataset-image-next"]
    for selector in parts:
        expect(page.locator(selector)).to_be_visible()
        assert in_viewport(page, selector), f"{selector} needs scrolling at 1366×768"
    grid = page.locator("#dataset-grid").bounding_box()
    editor = page.locator("#dataset-editor").bounding_box()
    assert grid and editor and editor["x"] >= grid["x"] + grid["width"] - 1  # beside, not below
    page.locator(TILES).nth(40).click()  # far down the grid: the editor has stayed in view
    for selector in ("#dataset-caption", "#dataset-approve"):
        assert in_viewport(page, selector), f"{selector} scrolled away with the grid"
    screenshot(page, "dataset-laptop")
    page.context.close()


def test_tiles_carry_text_badges_and_show_the_whole_caption_on_hover(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, LAPTOP, tab="Dataset")
    filter_caption(page, "a white van car", "1 matching")
    tile = page.locator(TILES).first
    expect(tile).to_have_attribute("data-state", re.compile("approved|unreviewed|rejected"))
    badge = page.evaluate(f"() => getComputedStyle(document.querySelector('{TILES}'), '::before').content")
    assert badge.strip('"') == tile.get_attribute("data-state")  # a text badge, not an emoji in the label
    label = tile.locator(".caption-label")
    expect(label).to_have_text("a white van car")  # the state word became the badge
    assert not re.search(r"[\u2600-\u27bf\U0001f300-\U0001faff]", label.inner_text())
    expect(tile).to_have_attribute("title", "a white van car")
    tile.hover()
    assert page.evaluate(f"() => getComputedStyle(document.querySelector('{TILES} .caption-label')).whiteSpace") in (
        "normal",
        "pre-line",
    )
    page.context.close()


def test_history_is_one_line_per_version_with_a_word_diff(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, LAPTOP, tab="Dataset")
    unlock(page)
    filter_caption(page, "a green van car", "1 matching")
    page.locator(TILES).first.click()
    caption = page.locator("#dataset-caption textarea")
    expect(caption).to_have_value("a green van car")
    caption.fill("a dark green van car")
    page.locator("#dataset-save").click()
    expect(page.locator("#dataset-message")).to_contain_text("Saved")
    rows = page.locator("#dataset-history li")
    expect(rows.first).to_contain_text("app")
    expect(rows.first.locator("ins")).to_have_text("dark")  # what this version added, against the one before
    assert rows.count() >= 2
    heights = [rows.nth(n).bounding_box()["height"] for n in range(rows.count())]  # type: ignore[index]
    assert max(heights) < 80, heights  # compact lines, not a column wrapped letter by letter
    page.context.close()


def test_bulk_action_resets_its_confirmation_and_undoes_in_one_step(browser: Browser, served: Served) -> None:
    catalog = served.runtime.catalog
    page = open_page(browser, served.url, LAPTOP, tab="Dataset")
    unlock(page)
    filter_caption(page, "pickup car", "2 matching")
    before = {i: catalog.get(i).review_state for i in curation.matching_ids(catalog, curation.Query(text="pickup car"))}
    page.get_by_role("button", name="Bulk actions").click()
    page.locator("#bulk-scope").get_by_label("everything matching the filters").check()
    page.locator("#bulk-action").get_by_label("reject", exact=True).check()
    page.locator("#bulk-confirm input").check()
    page.locator("#dataset-bulk-run").click()
    expect(page.locator("#bulk-report textarea")).to_have_value(re.compile(r"^Reject: \d changed of 2 selected"))
    expect(page.locator("#bulk-confirm input")).not_to_be_checked()  # the next action asks again
    expect(page.locator("#bulk-scope").get_by_label("selected on this page")).to_be_checked()
    expect(page.locator("#bulk-last")).to_contain_text("reject")
    assert {catalog.get(i).review_state for i in before} == {"rejected"}
    page.locator("#dataset-bulk-undo").click()
    expect(page.locator("#bulk-report textarea")).to_have_value(re.compile(r"^Undo reject: \d changed"))
    assert {i: catalog.get(i).review_state for i in before} == before
    page.context.close()


def test_n_and_p_move_the_grid_highlight_with_the_editor(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, LAPTOP, tab="Dataset")
    tiles = page.locator(TILES)
    first = curation.matching_ids(served.runtime.catalog, curation.Query())[0]
    tiles.first.click()
    expect(tiles.nth(0)).to_have_class(re.compile(r"\bselected\b"))
    expect(page.locator("#dataset-meta")).to_contain_text(first[:12])  # the editor has the image
    page.locator("#dataset-meta").click()
    page.keyboard.press("n")
    expect(tiles.nth(1)).to_have_class(re.compile(r"\bselected\b"))
    expect(tiles.nth(0)).not_to_have_class(re.compile(r"\bselected\b"))
    page.context.close()


def test_an_empty_filter_says_so_and_clears(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, PHONE, tab="Dataset")
    filter_caption(page, "flying submarine", "0 matching")
    expect(page.locator("#dataset-empty")).to_contain_text("No images match these filters")
    expect(page.locator("#dataset-grid")).to_be_hidden()  # no blank box, no upload area
    screenshot(page, "dataset-empty-phone")
    page.locator("#dataset-clear-filters").click()
    expect(page.locator("#dataset-page-info")).to_contain_text("60 matching")
    expect(page.locator(FILTER_TEXT)).to_have_value("")
    expect(page.locator("#dataset-empty")).to_be_hidden()
    page.context.close()


def test_a_link_opens_the_filters_and_the_image_and_follows_changes(browser: Browser, served: Served) -> None:
    catalog = served.runtime.catalog
    record = catalog.find_by_path(str((served.cars / "white_van.png").resolve()))
    assert record is not None
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    page.goto(f"{served.url}?tab=dataset&text=white+van&image={record.id}")
    expect(page.locator("#dataset-meta")).to_contain_text(record.id[:12])
    expect(page.locator(FILTER_TEXT)).to_have_value("white van")
    matching = curation.matching_ids(catalog, curation.Query(text="white van"))
    expect(page.locator("#dataset-page-info")).to_contain_text(f"{len(matching)} matching")
    expect(page.locator(TILES).nth(matching.index(record.id))).to_have_class(re.compile(r"\bselected\b"))
    page.wait_for_function("(id) => new URL(location.href).searchParams.get('image') === id", arg=record.id)
    page.locator(FILTER_TEXT).fill("car")
    page.locator(FILTER_TEXT).press("Enter")
    page.wait_for_function("() => new URL(location.href).searchParams.get('text') === 'car'")
    page.reload()
    expect(page.locator(FILTER_TEXT)).to_have_value("car")
    expect(page.locator("#dataset-meta")).to_contain_text(record.id[:12])
    context.close()
