"""The Search tab as a visitor uses it (issue #24): the selection is the car shown, phones see every result,
browse grids are read-only, and a changed filter or a pasted photo searches at once."""

from __future__ import annotations

import base64

from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import DESKTOP, Served, open_page, screenshot, searched, unlock

TILES = "#results .thumbnail-item"
PHONES = [{"width": width, "height": 800} for width in (360, 390, 430)]


def search(page: Page, text: str, count: int = 12) -> None:
    box = page.locator("#search-text textarea")
    box.fill(text)
    box.press("Enter")
    searched(page, text)
    expect(page.locator("#search-notes")).to_contain_text("higher means a closer match")
    expect(page.locator(TILES)).to_have_count(count)


def caption_of(page: Page, n: int) -> str:
    return page.locator(TILES).nth(n).locator(".caption-label").inner_text().splitlines()[0]


def no_sideways_scroll(page: Page) -> bool:
    return bool(page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"))


def test_find_similar_searches_with_the_car_in_the_selected_panel_after_a_new_search(
    browser: Browser, served: Served
) -> None:
    page = open_page(browser, served.url, DESKTOP)
    search(page, "a green van")
    page.locator(TILES).nth(2).click()
    expect(page.locator("#selected-caption")).to_contain_text("similarity")
    search(page, "a red sedan")  # a new search: the old selection must not linger
    expect(page.locator("#selected-caption")).to_contain_text("Select a result to see it large here.")
    page.locator("#find-similar").click()
    expect(page.locator("#search-notes")).to_contain_text("Select a result first")
    chosen = caption_of(page, 3)
    page.locator(TILES).nth(3).click()
    expect(page.locator("#selected-caption")).to_contain_text(chosen)
    page.locator("#find-similar").click()
    first = page.locator(TILES).first.locator(".caption-label")
    expect(first).to_contain_text("similarity 1.000")  # the query photo was exactly the car in the panel
    expect(first).to_contain_text(chosen)
    page.context.close()


def test_phones_see_two_columns_and_nothing_off_screen(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, PHONES[0])
    search(page, "a blue pickup")
    page.get_by_role("tab", name="Dataset").click()
    expect(page.locator("#dataset-grid .thumbnail-item").first).to_be_visible()
    for viewport in PHONES:  # 360, 390 and 430 px wide, one page resized
        page.set_viewport_size(viewport)
        page.get_by_role("tab", name="Search").click()
        page.evaluate("() => window.scrollTo(0, 0)")
        text = page.locator("#search-text textarea").bounding_box()
        assert text and text["y"] + text["height"] <= viewport["height"], "the first screen shows the search box"
        lefts = {round(tile.bounding_box()["x"]) for tile in page.locator(TILES).all()}  # type: ignore[index]
        assert len(lefts) == 2, (viewport, lefts)
        assert no_sideways_scroll(page), viewport
        page.get_by_role("tab", name="Dataset").click()
        assert no_sideways_scroll(page), viewport
    page.locator("#dataset-grid .thumbnail-item").nth(3).click()
    expect(page.locator("#dataset-image")).to_be_in_viewport()  # the tapped tile's editor comes into view
    screenshot(page, "dataset-phone-editor")
    page.context.close()


def test_browse_grids_offer_no_upload_clear_or_delete(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP)
    search(page, "a car")
    page.get_by_role("tab", name="Dataset").click()
    unlock(page)  # even an admin deletes only through the bulk action with its confirmation
    page.locator("#dataset-grid .thumbnail-item").first.wait_for()
    for grid in ("#results", "#dataset-grid"):
        assert page.locator(f"{grid} input[type=file]").count() == 0
        assert page.locator(f"{grid} button[aria-label*='elete'], {grid} button[aria-label*='lear']").count() == 0
        assert "Drop Media" not in page.locator(grid).inner_text()
    page.context.close()


def test_a_changed_filter_searches_again_at_once(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP)
    search(page, "a car")
    page.locator("#search-filters").get_by_text("Filters (none active)").click()
    page.locator("#search-filters").get_by_label("color", exact=True).click()
    option = page.get_by_role("option").filter(has_not_text="any").first
    label = option.inner_text()  # "red (1)": the value and how many cars have it
    option.click()
    expect(page.locator(TILES)).to_have_count(min(12, int(label.rsplit("(", 1)[1].rstrip(")"))))  # no Search press
    page.context.close()


def test_a_pasted_photo_searches_with_it(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP)
    photo = next(p for p in served.cars.rglob("*.png") if p.stem == "blue_pickup")
    data = base64.b64encode(photo.read_bytes()).decode()
    page.locator("h1").first.click()  # focus outside any text box
    page.evaluate(
        """(data) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const file = new File([bytes], 'pasted.png', {type: 'image/png'});
            const dt = new DataTransfer(); dt.items.add(file);
            document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true}));
        }""",
        data,
    )
    first = page.locator(TILES).first.locator(".caption-label")
    expect(first).to_contain_text("similarity 1.000")
    expect(first).to_contain_text("blue pickup")
    page.context.close()


def test_a_link_opens_its_search_and_every_search_is_a_link(browser: Browser, served: Served) -> None:
    page = open_page(browser, f"{served.url}?tab=search&q=a+car&color=red", DESKTOP)
    expect(page.locator("#search-text textarea")).to_have_value("a car")
    expect(page.locator(TILES)).to_have_count(1)  # the one red car
    expect(page.locator("#search-filters")).to_contain_text("1 active: color: red")
    search(page, "a blue van", count=1)  # the filter stays: one red car
    page.wait_for_function("() => new URL(location.href).searchParams.get('q') === 'a blue van'")
    assert "color=red" in page.url and "tab=search" in page.url
    page.reload()
    expect(page.locator("#search-text textarea")).to_have_value("a blue van")
    expect(page.locator(TILES)).to_have_count(1)
    page.get_by_role("tab", name="Training").click()
    page.wait_for_function("() => new URL(location.href).searchParams.get('tab') === 'training'")
    page.goto(f"{served.url}?tab=dataset")
    expect(page.locator("#dataset-grid")).to_be_visible()
    page.context.close()


CONTRAST_JS = """(el) => {
    const parse = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    const lum = ([r, g, b]) => 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    const color = parse(getComputedStyle(el, el.tagName === 'TEXTAREA' ? '::placeholder' : null).color);
    let bg = el, back = null;
    while (bg) {
        const c = getComputedStyle(bg).backgroundColor;
        if (c && !c.endsWith(', 0)') && c !== 'transparent') { back = parse(c); break; }
        bg = bg.parentElement;
    }
    back = back || [255, 255, 255];
    const [a, b] = [lum(color), lum(back)].sort((x, y) => y - x);
    return (a + 0.05) / (b + 0.05);
}"""


def test_a_first_visit_explains_itself(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP)
    expect(page.locator(TILES)).to_have_count(12)  # the collection is browsable before any query
    expect(page.locator("#search-notes")).to_contain_text("newest cars in the collection")
    expect(page.locator("#search-status")).to_contain_text("60 cars")
    expect(page.get_by_text("Use via API")).to_be_visible()  # the API / MCP footer is shown, not hidden by CSS
    expect(page.locator("#search-notes")).to_contain_text("newest cars")
    chips = page.locator("#example-queries button")
    expect(chips).to_have_count(4)
    example = chips.first.inner_text().strip()
    chips.first.click()
    expect(page.locator("#search-text textarea")).to_have_value(example)
    expect(page.locator("#search-notes")).to_contain_text("higher means a closer match")
    record = next(r for r in served.runtime.catalog.get_many(served.runtime.catalog.ids()).values() if r.attributes)
    color, body = record.attributes["color"], record.attributes["body_type"]
    page.goto(f"{served.url}?q=a+{color}+{body}&color={color}&body_type={body}")
    expect(page.locator(TILES)).to_have_count(1)
    expect(page.locator(TILES).first).to_contain_text(f"matches: {color}, {body}")  # why: its attributes
    page.context.close()


def test_keyboard_users_see_where_they_are_and_text_is_readable(browser: Browser, served: Served) -> None:
    page = open_page(browser, served.url, DESKTOP)
    text = page.locator("#search-text textarea")
    text.focus()
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.id || document.activeElement.closest('[id]')?.id")
    assert focused == "search-button", focused  # tab order: description, then Search
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), outline
    assert text.evaluate(CONTRAST_JS) >= 4.5  # the placeholder
    label = page.locator("#search-text [data-testid='block-info']").first
    assert label.evaluate(CONTRAST_JS) >= 4.5
    page.context.close()
