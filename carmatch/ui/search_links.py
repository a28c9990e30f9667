"""Shareable searches: the page's URL carries the tab, the description and the filters.

``?tab=search&q=red+suv&color=red`` opens the Search tab with those filters and its results; every search
writes its query back into the address bar (``history.replaceState``), so a reload or a copied link shows
the same results. Only the description and the attribute filters travel: never a photo.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gradio as gr

from carmatch.catalog.schema import FILTER_ATTRIBUTES

ANY = "any"
TEXT_PARAM = "q"
MAX_PARAM_CHARS = 500  # a longer value in a hand-made link is cut, never an error
TABS = ("search", "dataset", "training")

# (description, filters in FILTER_ATTRIBUTES order) -> the address bar
WRITE_URL_JS = (
    "(q, ...filters) => { const url = new URL(window.location.href);"
    f" const keys = {list(FILTER_ATTRIBUTES)!r};"
    " const put = (k, v) => (v && String(v).trim() && v !== 'any') ? url.searchParams.set(k, String(v).trim())"
    " : url.searchParams.delete(k);"
    " url.searchParams.set('tab', 'search'); put('q', q); keys.forEach((k, i) => put(k, filters[i]));"
    " window.history.replaceState(null, '', url); }"
)
# a tab chosen by hand goes into the address bar too
TAB_URL_JS = (
    "(tab) => { const url = new URL(window.location.href); url.searchParams.set('tab', tab);"
    " window.history.replaceState(null, '', url); }"
)


def query_from_url(params: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """(description, filters) a link asks for; unknown parameters are ignored, values trimmed and cut."""
    text = str(params.get(TEXT_PARAM, "")).strip()[:MAX_PARAM_CHARS]
    where = {}
    for key in FILTER_ATTRIBUTES:
        value = str(params.get(key, "")).strip().lower()[:MAX_PARAM_CHARS]
        if value and value != ANY:
            where[key] = value
    return text, where


def tab_from_url(params: Mapping[str, str]) -> str | None:
    """The tab a link names, when it is one of the app's."""
    tab = str(params.get("tab", "")).strip().lower()
    return tab if tab in TABS else None


def wire(demo: gr.Blocks, ui: dict[str, Any], filters: dict[str, Any], live: Any, browse: Any) -> None:
    """Open a link's search on load (with no query: ``browse()``, the newest cars); write each search's query
    into the address bar."""

    def from_url(request: gr.Request) -> tuple[Any, ...]:
        params = dict(request.query_params) if request is not None else {}
        if tab_from_url(params) not in (None, "search"):  # another tab's link: its filters are not the search's
            params = {}
        text, where = query_from_url(params)
        if not text and not where:
            items, results, notes = browse()
            kept = [gr.update() for _ in range(1 + len(filters))]
            return (*kept, items, results, results, notes, *[gr.update() for _ in ui["page_outputs"][4:]])
        values = [where.get(key, ANY) for key in FILTER_ATTRIBUTES]
        found = live(text, None, 12, 0.5, *values, ANY, request=request) if text else ()
        found = found or tuple(gr.update() for _ in ui["page_outputs"])
        return (text, *values, *found)

    demo.load(from_url, None, [ui["text"], *filters.values(), *ui["page_outputs"]], api_visibility="private")
    ui["url_inputs"] = [ui["text"], *filters.values()]


def wire_tabs(demo: gr.Blocks, labels: dict[str, str], items: dict[str, gr.Tab]) -> None:
    """``?tab=`` opens that tab (its button clicked once the page is up); a tab chosen by hand goes into the URL."""
    names = {name: label for name, label in labels.items() if name in TABS}
    demo.load(
        None,
        js=(
            f"() => {{ const labels = {names!r};"
            # the address as the page was opened: the Search tab's first select may already have rewritten it
            " const opened = performance.getEntriesByType('navigation')[0]?.name || window.location.href;"
            " const tab = new URL(opened).searchParams.get('tab');"
            " const label = labels[(tab || '').toLowerCase()]; if (!label || tab === 'search') return;"
            " [...document.querySelectorAll('[role=tab]')].find((b) => b.textContent.trim() === label)?.click();"
            " const url = new URL(window.location.href); url.searchParams.set('tab', tab.toLowerCase());"
            " window.history.replaceState(null, '', url); }"
        ),
    )
    for name, item in items.items():
        item.select(None, js=f"() => ({TAB_URL_JS})({name!r})")
