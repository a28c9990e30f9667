"""The Dataset grid's clicks and keys: open an image, or pick thumbnails; shortcuts; badges; local dates.

Layout is in :mod:`carmatch.ui.dataset_tab`; the pure rules (toggle, range, marks) in
:mod:`carmatch.ui.dataset_bulk_actions`. Shift-click needs the browser: a capture listener records
whether Shift was held on the last mouse press, and the select event's ``js`` hands that flag in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import gradio as gr

from carmatch.bounds import check_selection
from carmatch.dataset import curation
from carmatch.errors import InvalidInputError
from carmatch.runtime import Runtime
from carmatch.ui import dataset_actions as actions
from carmatch.ui import dataset_bulk_actions as bulk_actions
from carmatch.ui.phrasing import as_text, for_browser

KEYS = {
    "a": "dataset-approve",
    "r": "dataset-reject",
    "s": "dataset-skip",
    "n": "dataset-image-next",
    "p": "dataset-image-prev",
}
KEYS_HELP = (
    "Keys (outside text boxes): **A** approve · **R** reject · **S** skip to the next unreviewed · "
    "**N** / **P** next / previous image · **Enter** in the caption saves, approves and moves on"
)
# One document-level listener: a key outside a text box clicks the button it names, when that button can act;
# and a capture listener remembers whether Shift was held on the last mouse press (for shift-click ranges).
KEYS_JS = (
    "() => { const keys = " + json.dumps(KEYS) + "; document.addEventListener('keydown', (e) => {"
    " if (e.ctrlKey || e.metaKey || e.altKey || /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName)) return;"
    " const button = document.getElementById(keys[e.key.toLowerCase()]);"
    " if (button && button.offsetParent !== null && !button.disabled) { e.preventDefault(); button.click(); } });"
    " document.addEventListener('mousedown', (e) => { window.carmatchShift = e.shiftKey; }, true); }"
)
# History dates arrive as 'YYYY-MM-DD HH:MM UTC'; the browser rewrites each such text in its own local time
# (the UTC value stays in the cell's title). It edits the text node itself, so the table's later updates land.
LOCAL_DATES_JS = (
    "() => { const utc = /^(\\d{4})-(\\d\\d)-(\\d\\d) (\\d\\d):(\\d\\d) UTC$/;"
    " const pad = (n) => String(n).padStart(2, '0');"
    " const cells = '#dataset-history time';"
    " const localize = () => document.querySelectorAll(cells).forEach((cell) => {"
    " const walk = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);"
    " for (let node = walk.nextNode(); node; node = walk.nextNode()) {"
    " const m = utc.exec(node.data.trim()); if (!m) continue;"
    " const d = new Date(Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5]));"
    " node.data = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} "
    "${pad(d.getHours())}:${pad(d.getMinutes())}`; cell.title = m[0]; } });"
    " new MutationObserver(localize).observe(document.body, {subtree: true, childList: true, characterData: true});"
    " localize(); }"
)
# Tile labels read 'picked · approved · caption': the words before the caption become badges (data attributes
# the stylesheet draws), the caption stays as the label, whole on hover or focus and as the tile's title.
# The text node is edited in place, so Gradio's later updates of the label land and are decorated again.
GRID_BADGES_JS = (
    "() => { const head = /^(picked · )?(approved|rejected|unreviewed) · /;"
    " const decorate = () => document.querySelectorAll('#dataset-grid .thumbnail-item').forEach((tile) => {"
    " const label = tile.querySelector('.caption-label'); if (!label) return;"
    " const walk = document.createTreeWalker(label, NodeFilter.SHOW_TEXT);"
    " for (let node = walk.nextNode(); node; node = walk.nextNode()) {"
    " const m = head.exec(node.data); if (!m) continue; node.data = node.data.slice(m[0].length);"
    " tile.dataset.state = m[2]; tile.dataset.picked = m[1] ? 'yes' : 'no'; tile.title = node.data;"
    " tile.setAttribute('aria-label', `${m[1] ? 'picked, ' : ''}${m[2]}: ${node.data}`); } });"
    " new MutationObserver(decorate).observe(document.body, {subtree: true, childList: true, characterData: true});"
    " decorate(); }"
)
MESSAGE_OUTPUT = -2  # the editor's outputs end with its message line, then the conflict box
WITH_SHIFT_JS = "(...values) => [...values.slice(0, -1), window.carmatchShift === true]"  # last input: shift held
# On a narrow screen the editor sits below the grid: a tapped tile brings it into view (select mode excepted).
EDITOR_INTO_VIEW_JS = (
    "() => { if (window.innerWidth >= 1024 || document.querySelector('#dataset-select-mode input')?.checked) return;"
    " document.getElementById('dataset-image')?.scrollIntoView({block: 'start'}); }"
)


def wire(
    runtime: Runtime,
    grid: gr.Gallery,
    page_ids: gr.State,
    bulk: dict[str, Any],
    editor_outputs: list[Any],
    editor_values: Callable[[actions.EditorView], tuple[Any, ...]],
) -> None:
    """A click opens the image in the editor, or in select mode picks it (shift-click: a range) for bulk actions."""
    selected, note = bulk["selected"], bulk["note"]
    keep_editor = [gr.update() for _ in editor_outputs]
    last = gr.State(None)  # the last thumbnail picked, where a shift-click range starts
    shift = gr.Checkbox(visible=False)  # filled in the browser by WITH_SHIFT_JS

    def on_select(
        ids: list[str], mode: bool, chosen: list[str], items: Any, start: int | None, held: bool, evt: gr.SelectData
    ) -> tuple[Any, ...]:
        try:
            index = check_selection(evt.index, len(ids or []), "thumbnail", "The clicked thumbnail")  # 'a', NaN, 99…
        except InvalidInputError as exc:
            refused: list[Any] = [gr.update() for _ in editor_outputs]
            refused[MESSAGE_OUTPUT] = f"⚠️ {as_text(for_browser(exc))}"  # the rest of the editor stays as it was
            return (*refused, *[gr.update() for _ in range(4)])
        if not mode:
            return (*editor_values(actions.open_image(runtime, ids[index])), *[gr.update() for _ in range(4)])
        if held and start is not None:
            chosen = bulk_actions.pick_range(ids, chosen or [], start, index)
        else:
            chosen = bulk_actions.toggle_selection(ids, chosen or [], index)
        marked = bulk_actions.mark_selected(items, ids, chosen)
        return (*keep_editor, chosen, bulk_actions.selection_note(chosen), marked, index)

    inputs = [page_ids, bulk["mode"], selected, grid, last, shift]
    outputs = [*editor_outputs, selected, note, grid, last]
    grid.select(on_select, inputs, outputs, js=WITH_SHIFT_JS, api_visibility="private", show_progress="hidden").then(
        None, js=EDITOR_INTO_VIEW_JS
    )

    def choose(everything: bool) -> Any:
        def handler(ids: list[str], items: Any) -> tuple[Any, ...]:
            picked = list(ids) if everything else []
            return picked, bulk_actions.selection_note(picked), bulk_actions.mark_selected(items, ids, picked)

        return handler

    for button, everything in ((bulk["select_all"], True), (bulk["select_none"], False)):
        button.click(choose(everything), [page_ids, grid], [selected, note, grid], api_visibility="private")
    selected.change(lambda c: bulk_actions.selection_note(c or []), [selected], [note], api_visibility="private")


def step_image(runtime: Runtime, image_id: str | None, query: curation.Query, step: int) -> actions.EditorView:
    """The image ``step`` places after (or before) ``image_id`` among those matching the filters, in grid order."""
    ids = curation.matching_ids(runtime.catalog, query)
    if not ids:
        return actions.open_image(runtime, None, "No images match the filters.")
    if image_id not in ids:  # nothing open yet (or it left the filters): start at the first or the last
        return actions.open_image(runtime, ids[0] if step > 0 else ids[-1])
    index = ids.index(image_id) + step
    if not 0 <= index < len(ids):
        edge = "last" if step > 0 else "first"
        return actions.open_image(runtime, image_id, f"This is the {edge} image matching the filters.")
    return actions.open_image(runtime, ids[index])


def wire_stepping(
    runtime: Runtime,
    buttons: tuple[gr.Button, gr.Button],
    current: gr.State,
    filters: list[Any],
    editor_outputs: list[Any],
    editor_values: Callable[[actions.EditorView], tuple[Any, ...]],
    page_number: gr.Number,
    grid_outputs: list[Any],
    page_values: Callable[[curation.Query, str, int], tuple[Any, ...]],
) -> None:
    """Previous / next image buttons (keys P / N) open the neighbouring image in the editor and move the grid's
    highlight to it (turning the page when it is on another one)."""

    def stepper(step: int) -> Any:
        def handler(image_id: str, number: float, *values: Any) -> tuple[Any, ...]:
            query = actions.query_from_inputs(values)
            view = step_image(runtime, image_id or None, query, step)
            return (*editor_values(view), *page_values(query, view.image_id, int(number or 1)))

        return handler

    for button, step in zip(buttons, (-1, +1)):
        # always_last: a key pressed while the previous step is still answering steps again once it has
        button.click(
            stepper(step),
            [current, page_number, *filters],
            [*editor_outputs, *grid_outputs],
            api_visibility="private",
            trigger_mode="always_last",
        )
