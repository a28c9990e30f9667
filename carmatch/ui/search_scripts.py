"""The Search tab's browser-side scripts: busy state, paste, scrolling, and the way back to a tapped tile.

Each is a JavaScript function given to a Gradio event's ``js``; the tab's layout and wiring are in
:mod:`carmatch.ui.search_tab`.
"""

from __future__ import annotations

from carmatch.ui.search_links import WRITE_URL_JS

# While a search runs: the Search button is disabled and the results dimmed (app.py's CSS, body.carmatch-busy).
BUSY_JS = (
    "() => { document.body.classList.add('carmatch-busy');"
    " const b = document.getElementById('search-button'); if (b) b.disabled = true; }"
)
IDLE_JS = (
    "() => { document.body.classList.remove('carmatch-busy');"
    " const b = document.getElementById('search-button'); if (b) b.disabled = false; }"
)
# Ctrl+V anywhere on the Search tab (outside a text box): a pasted image becomes the query photo, which searches.
PASTE_PHOTO_JS = (
    "() => document.addEventListener('paste', (e) => {"
    " const panel = document.getElementById('search-photo'); if (!panel || !panel.offsetParent) return;"
    " if (e.target.closest && e.target.closest('textarea, input[type=text], input[type=password]')) return;"
    " const file = [...(e.clipboardData?.files || [])].find((f) => f.type.startsWith('image/')); if (!file) return;"
    " const input = panel.querySelector('input[type=file]'); if (!input) return;"
    " const dt = new DataTransfer(); dt.items.add(file); input.files = dt.files;"
    " input.dispatchEvent(new Event('change', {bubbles: true})); e.preventDefault(); })"
)
# After a search or a click on a result: bring the results (or the selected one) into view, on a phone too.
# (After a search, also the query into the address bar: see search_links.)
SCROLL_TO_RESULTS = "() => document.getElementById('search-notes')?.scrollIntoView({block: 'start'})"
AFTER_SEARCH_JS = f"(...v) => {{ ({IDLE_JS})(); ({SCROLL_TO_RESULTS})(); ({WRITE_URL_JS})(...v); }}"
SCROLL_TO_DETAIL = (  # on a phone the whole detail comes to the top; on a desktop it moves as little as it can
    "() => document.getElementById('result-detail')"
    "?.scrollIntoView({block: window.innerWidth < 768 ? 'start' : 'nearest'})"
)
# "Back to results" returns to the tile that was tapped: a capture listener remembers its position in the gallery.
TRACK_TAPS_JS = (
    "() => document.addEventListener('click', (e) => { const tile = e.target.closest('#results .thumbnail-item');"
    " if (tile) window.carmatchTile = [...document.querySelectorAll('#results .thumbnail-item')].indexOf(tile); },"
    " true)"
)
BACK_TO_TILE_JS = (
    "() => { const tiles = document.querySelectorAll('#results .thumbnail-item');"
    " (tiles[window.carmatchTile ?? -1] || document.getElementById('results'))"
    "?.scrollIntoView({block: 'center'}); }"
)
