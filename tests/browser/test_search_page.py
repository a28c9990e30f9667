"""The Search tab in Chromium: Enter searches, readable results, find similar, filters, errors, phone size."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, Route, expect

from tests.browser.conftest import DESKTOP, PHONE, Served, open_page, screenshot, searched

TILES = "#results .thumbnail-item"


def search_by_enter(page: Page, text: str) -> None:
    """Type a description and press Enter; wait for the 12 results (the default number)."""
    box = page.locator("#search-text textarea")
    box.fill(text)
    box.press("Enter")
    searched(page, text)
    expect(page.locator(TILES)).to_have_count(12)


def choose(page: Page, label: str, option: str) -> None:
    """Pick ``option`` in the dropdown labelled ``label``."""
    page.locator("#search-filters").get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option).click()


def test_enter_in_description_searches_and_keeps_no_newline(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP)
    text = page.locator("#search-text textarea")
    expect(text).to_have_attribute("placeholder", "dark blue hatchback with a roof rack")
    expect(page.locator("#search-text")).to_contain_text("Enter searches · Shift+Enter adds a line")  # visible text
    search_by_enter(page, "a red sedan")
    assert text.input_value() == "a red sedan"  # Enter searched; it added no newline
    text.press("Shift+Enter")
    expect(text).to_have_value("a red sedan\n")  # Shift+Enter adds a line, as the hint says
    expect(page.locator("#search-notes")).to_contain_text("higher means a closer match")
    screenshot(page, "search-desktop")
    page.context.close()


def test_captions_sit_below_thumbnails_not_over_them(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP)
    search_by_enter(page, "a car")
    for tile in page.locator(TILES).all():
        image, caption = tile.locator("img").bounding_box(), tile.locator(".caption-label").bounding_box()
        assert image and caption
        assert caption["y"] >= image["y"] + image["height"] - 1, (image, caption)
        expect(tile.locator(".caption-label")).to_contain_text("similarity")
    page.context.close()


def test_find_similar_searches_with_the_selected_photo(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP)
    search_by_enter(page, "a green van")
    tile = page.locator(TILES).nth(2)
    chosen = tile.locator(".caption-label").inner_text().splitlines()[0]
    tile.click()
    expect(page.locator("#result-detail")).to_contain_text(chosen)
    page.locator("#find-similar").click()
    expect(page.locator("#search-text textarea")).to_have_value("")
    first = page.locator(TILES).first.locator(".caption-label")
    expect(first).to_contain_text("similarity 1.000")  # the photo itself comes first
    expect(first).to_contain_text(chosen)
    expect(page.locator("#search-photo img")).to_be_visible()
    page.context.close()


def test_filters_show_when_closed_name_what_to_relax_and_clear(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP)
    page.locator("#search-filters").get_by_text("Filters (none active)").click()
    choose(page, "color", "red (1)")
    choose(page, "body type", "van (2)")
    page.locator("#search-filters").get_by_text("Filters (2 active").click()  # close the panel
    expect(page.locator("#search-filters")).to_contain_text("Filters (2 active: color: red, body type: van)")
    expect(page.get_by_label("review state")).to_have_count(0)  # no review-state filter on the public tab
    page.locator("#search-text textarea").fill("a car")
    page.locator("#search-button").click()
    expect(page.locator("#search-notes")).to_contain_text("No matches with the filters color = red, body type = van")
    screenshot(page, "search-no-matches")
    page.locator("#clear-filters").click()
    expect(page.locator(TILES)).to_have_count(12)
    expect(page.locator("#search-filters")).to_contain_text("Filters (none active)")
    page.context.close()


def test_error_stays_where_the_results_were_in_plain_text(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP)
    search_by_enter(page, "a car")
    page.locator("#search-text textarea").fill("")
    page.locator("#search-button").click()
    notes = page.locator("#search-notes")
    expect(notes).to_contain_text("⚠️")
    expect(page.locator(TILES)).to_have_count(0)
    assert "`" not in notes.inner_text()
    page.context.close()


def test_phone_reaches_search_and_results_without_scrolling_past_the_drop_zone(
    browser: Browser, served: Served
) -> None:
    page = open_page(browser, served.url, PHONE)
    button = page.locator("#search-button").bounding_box()
    assert button and button["y"] + button["height"] <= PHONE["height"], button
    search_by_enter(page, "a blue pickup")
    expect(page.locator("#search-notes")).to_be_in_viewport()
    screenshot(page, "search-phone")
    page.locator(TILES).first.click()
    expect(page.locator("#result-detail")).to_be_in_viewport()
    expect(page.locator("#result-detail")).to_contain_text("similarity")
    page.context.close()


def test_phone_tap_shows_the_result_and_back_returns_to_the_tapped_tile(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, PHONE)
    search_by_enter(page, "a green van")
    tile = page.locator(TILES).nth(1)
    tile.click()
    expect(page.locator("#result-detail")).to_be_in_viewport()
    expect(page.locator("#result-detail")).to_contain_text("similarity")
    expect(tile).not_to_be_in_viewport()  # the detail took the screen: the way back must be obvious
    page.locator("#back-to-results").click()
    expect(tile).to_be_in_viewport()
    page.context.close()


def test_previous_results_stay_uncovered_while_a_search_runs(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP)
    search_by_enter(page, "a white van")
    held: list[Route] = []
    page.route(
        "**/queue/join*", lambda route: held.append(route)
    )  # hold the next search until the old results are checked
    page.locator("#search-text textarea").fill("a yellow sedan")
    page.locator("#search-button").click()
    expect(page.locator(TILES)).to_have_count(12)
    first = page.locator(TILES).first.locator("img")
    box = first.bounding_box()
    assert box is not None
    on_top = page.evaluate(
        "([x, y]) => !!document.elementFromPoint(x, y)?.closest('#results .thumbnail-item')",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )
    assert on_top, "the old results are covered while the new search runs"
    assert held, "the search request was not held"
    held[0].continue_()
    page.unroute("**/queue/join*")
    expect(page.locator("#search-notes")).to_contain_text("higher means a closer match")
    page.context.close()
