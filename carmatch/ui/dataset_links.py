"""Linkable review: the Dataset tab's filters, page and opened image travel in the page's URL.

``?tab=dataset&state=unreviewed&color=red&page=2&image=3f2a…`` opens the Dataset tab with those filters,
that page and that image in the editor; every filter change, page turn and opened image writes itself
back (``history.replaceState``), so a reload keeps the reviewer's place and a copied link shares it.
Names differ from the Search tab's (``text``, not ``q``), and each tab reads its own only when the
link names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from carmatch.dataset import curation
from carmatch.ui.dataset_actions import QUERY_INPUTS
from carmatch.ui.search_links import MAX_PARAM_CHARS, tab_from_url

ANY = "any"
TAB = "dataset"
ID_CHARS = 64  # image ids are content hashes: 64 hex characters
QUERY_PARAMS = QUERY_INPUTS  # the filter row's inputs, left to right, each under its own name

# The address as the page was opened (the Search tab's first select may already have rewritten the bar)
OPENED_URL_JS = "(_) => [performance.getEntriesByType('navigation')[0]?.name || window.location.href]"
MAX_URL_CHARS = 8192

# (page, image id, filters in QUERY_PARAMS order) -> the address bar
WRITE_URL_JS = (
    "(page, image, ...values) => { const url = new URL(window.location.href);"
    f" const keys = {list(QUERY_PARAMS)!r};"
    " const put = (k, v) => (v !== null && v !== undefined && String(v).trim() && v !== 'any')"
    " ? url.searchParams.set(k, String(v).trim()) : url.searchParams.delete(k);"
    " url.searchParams.set('tab', 'dataset'); keys.forEach((k, i) => put(k, values[i]));"
    " put('page', Number(page) > 1 ? String(Math.trunc(Number(page))) : ''); put('image', image);"
    f" if (url.searchParams.get('sort') === {curation.DEFAULT_SORT!r}) url.searchParams.delete('sort');"
    " window.history.replaceState(null, '', url); }"
)


@dataclass
class DatasetLink:
    """What a Dataset link asks for: filter values by name (``any`` where unset), a page, an image."""

    values: dict[str, str] = field(default_factory=dict)
    page: int = 1
    image: str = ""

    def inputs(self) -> list[str]:
        """The filter inputs' values, in the tab's order."""
        default = {"sort": curation.DEFAULT_SORT, "text": ""}
        return [self.values.get(key, default.get(key, ANY)) for key in QUERY_PARAMS]


def params_of(url: str | None) -> dict[str, str]:
    """A URL's query parameters (the first of each name); nothing from an over-long or unreadable one."""
    text = str(url or "")[:MAX_URL_CHARS]
    try:
        return dict(reversed(parse_qsl(urlsplit(text).query)))
    except ValueError:
        return {}


def link_from_url(params: Mapping[str, str]) -> DatasetLink | None:
    """The Dataset state a URL names, or None when the link is for another tab (or none)."""
    if tab_from_url(params) != TAB:
        return None
    values = {}
    for key in QUERY_PARAMS:
        value = str(params.get(key, "")).strip()[:MAX_PARAM_CHARS]
        if value and value != ANY:
            values[key] = value if key in ("text", "sort") else value.lower()
    if values.get("sort") not in curation.SORTS:
        values.pop("sort", None)
    try:
        page = max(1, min(int(str(params.get("page", "1"))), 1_000_000))
    except ValueError:
        page = 1
    image = str(params.get("image", "")).strip().lower()[:ID_CHARS]
    if image and not all(c in "0123456789abcdef" for c in image):
        image = ""
    return DatasetLink(values, page, image)
