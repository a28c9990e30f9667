"""What a gr.Markdown shows: the HTML a CommonMark renderer makes of it, and that HTML's visible text."""

from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt

_RENDERER = MarkdownIt("commonmark")  # raw HTML allowed, as in a browser's Markdown component


def rendered(markdown: str) -> str:
    """The HTML ``markdown`` renders to."""
    return _RENDERER.render(markdown)


def shown(markdown: str) -> str:
    """The text a visitor reads: the rendered HTML without tags, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", rendered(markdown))).strip()
