"""The editor's caption history as compact HTML: one line per version, who/when/what, a word diff.

Everything shown comes from the catalog, so every value is escaped here; dates are written in UTC
inside ``<time>`` and the browser rewrites them in local time (``dataset_selection.LOCAL_DATES_JS``).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from carmatch.catalog.records import HistoryEntry
from carmatch.dataset.caption_diff import attribute_changes, word_diff

EMPTY = '<p class="cm-history-empty">No saved versions yet.</p>'
MAX_VERSIONS_SHOWN = 50  # older versions stay in the catalog (`carmatch dataset export` keeps them all)


def short_date(stamp: str | None) -> str:
    """An ISO timestamp as 'YYYY-MM-DD HH:MM UTC' (the catalog stores UTC; the browser shows local time)."""
    return (stamp or "").replace("T", " ")[:16] + " UTC" if stamp else ""


def _diff_html(old: str | None, new: str | None) -> str:
    parts = []
    for op, words in word_diff(old, new):
        text = html.escape(words)
        if op == "added":
            parts.append(f"<ins>{text}</ins>")
        elif op == "removed":
            parts.append(f"<del>{text}</del>")
        else:
            parts.append(text)
    return " ".join(parts) or "<em>(no caption)</em>"


def _what(entry: HistoryEntry, previous: HistoryEntry | None) -> str:
    """What this version did: the caption diff, changed attributes, or only a review decision."""
    if previous is None:
        return html.escape(entry.caption or "") or "<em>(no caption)</em>"
    pieces = []
    if (entry.caption or "") != (previous.caption or ""):
        pieces.append(_diff_html(previous.caption, entry.caption))
    changed = attribute_changes(previous.attributes, entry.attributes)
    if changed:
        pieces.append(f'<span class="cm-history-attrs">{html.escape("; ".join(changed))}</span>')
    if not pieces:
        was, now = previous.review_state or "unreviewed", entry.review_state or "unreviewed"
        pieces.append(f"<em>{html.escape(now if was == now else f'{was} → {now}')}</em>")
    return " · ".join(pieces)


def history_html(history: Sequence[HistoryEntry]) -> str:
    """Newest first: ``v3 · 2026-12-07 10:02 · alice (human) · approved — <diff against v2>``."""
    if not history:
        return EMPTY
    rows = []
    for position, entry in enumerate(history[:MAX_VERSIONS_SHOWN]):
        previous = history[position + 1] if position + 1 < len(history) else None
        state = entry.review_state or "unreviewed"
        who = html.escape(entry.author or "unknown") + (
            f" ({html.escape(entry.source)})" if entry.source and entry.source != entry.author else ""
        )
        stamp = html.escape(short_date(entry.created_at))
        rows.append(
            f'<li><span class="cm-history-head"><b>v{entry.version}</b> · <time>{stamp}</time> · {who} · '
            f'<span class="cm-badge cm-state-{html.escape(state)}">{html.escape(state)}</span></span> '
            f'<span class="cm-history-what">{_what(entry, previous)}</span></li>'
        )
    more = len(history) - MAX_VERSIONS_SHOWN
    tail = f'<p class="cm-history-empty">… {more} older version(s)</p>' if more > 0 else ""
    return f'<ol class="cm-history">{"".join(rows)}</ol>{tail}'
