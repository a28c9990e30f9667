"""The Dataset tab: browse, review and edit captions, bulk actions, import/export, add images.

Layout and wiring only; the logic is in :mod:`carmatch.ui.dataset_actions` (plain functions), and
the tab's panels keep the same rule: :mod:`~carmatch.ui.dataset_files_panel` (import, export, add
images), :mod:`~carmatch.ui.dataset_bulk_panel` (bulk actions and their undo) and
:mod:`~carmatch.ui.caption_jobs_panel` (Claude batch jobs), each with its ``_actions``. The URL carries
the filters, page and opened image (:mod:`~carmatch.ui.dataset_links`). Browsing is open to
everyone; every write re-checks the password held in the session's gr.State.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from carmatch.catalog.schema import FILTER_ATTRIBUTES
from carmatch.dataset import curation
from carmatch.errors import CarmatchError
from carmatch.runtime import Runtime
from carmatch.ui import (
    caption_jobs_panel,
    dataset_bulk_panel,
    dataset_editor,
    dataset_files_panel,
    dataset_selection,
    frame_view,
    server_panel,
)
from carmatch.ui import dataset_actions as actions
from carmatch.ui import dataset_bulk_actions as bulk_actions
from carmatch.ui.common import unlock_row, user_errors
from carmatch.ui.dataset_links import OPENED_URL_JS, WRITE_URL_JS, DatasetLink, link_from_url, params_of
from carmatch.ui.phrasing import as_text, for_browser

log = logging.getLogger(__name__)

ANY = actions.ANY
GRID_OUTPUTS = 9  # grid, ids, picked, page info, page number, counts, versions, empty note, clear button


def _grid_values(view: actions.PageView, counts: str, open_id: str | None = None) -> tuple[Any, ...]:
    """A PageView as the values of the grid's output components, in order (``open_id`` highlighted)."""
    highlight = view.ids.index(open_id) if open_id in view.ids else None
    note = view.empty_note
    return (
        gr.update(value=view.gallery, visible=bool(view.ids), selected_index=highlight),
        view.ids,
        gr.update(choices=view.choices, value=[]),
        view.info,
        view.page,
        counts,
        view.versions,
        gr.update(value=note, visible=bool(note)),
        gr.update(visible=bool(note) and view.filtered),
    )


def _highlight_values(runtime: Runtime, query: Any, image_id: str, page: int) -> tuple[Any, ...]:
    """The grid after the editor moved to ``image_id``: its tile highlighted, turning the page when needed."""
    unchanged = [gr.update() for _ in range(GRID_OUTPUTS)]
    if not image_id:
        return tuple(unchanged)
    place = actions.grid_place(runtime, query, image_id)
    if place is None:
        return tuple(unchanged)
    wanted, slot = place
    if wanted == page:  # on the page shown: only the highlight moves
        unchanged[0] = gr.update(selected_index=slot)
        return tuple(unchanged)
    view = actions.load_page(runtime, query, wanted)
    return _grid_values(view, actions.counts_markdown(runtime), image_id)


def _filter_row() -> list[Any]:
    """The filter inputs, in ``actions.QUERY_INPUTS`` order."""
    with gr.Row():
        text_f = gr.Textbox(label="Caption contains", placeholder="red pickup", scale=2, elem_id="dataset-filter-text")
        attributes = [
            gr.Dropdown(
                [ANY],
                value=ANY,
                label=key.replace("_", " "),
                allow_custom_value=True,
                min_width=110,
                elem_id=f"dataset-filter-{key}",
            )
            for key in FILTER_ATTRIBUTES
        ]
        source_f = gr.Dropdown([ANY, *curation.SOURCE_FILTERS], value=ANY, label="source", min_width=120)
        state_f = gr.Dropdown([ANY, *curation.STATE_FILTERS], value=ANY, label="review state", min_width=120)
        sort_f = gr.Dropdown(list(curation.SORTS), value=curation.DEFAULT_SORT, label="sort", min_width=140)
    return [text_f, *attributes, source_f, state_f, sort_f]


def _pager_row() -> dict[str, Any]:
    """Previous / page number / next / where we are / refresh."""
    with gr.Row(equal_height=True):
        return {
            "prev": gr.Button("◀ Previous", size="sm", elem_id="dataset-prev"),
            "number": gr.Number(value=1, precision=0, label="page", minimum=1, min_width=80),
            "next": gr.Button("Next ▶", size="sm", elem_id="dataset-next"),
            "info": gr.Markdown(elem_id="dataset-page-info", min_width=150),  # never a letter-wide column
            "refresh": gr.Button("Refresh", size="sm"),
        }


def build(demo: gr.Blocks, runtime: Runtime, session_password: gr.State | None = None) -> gr.State:
    """Lay out the Dataset tab inside the current gr.Blocks context and wire its events; returns the login state."""
    session_password = unlock_row(runtime, "Unlock editing", "dataset", session_password)
    server_panel.build(runtime, session_password)
    ui = _layout(runtime, session_password)
    _wire(demo, runtime, session_password, ui)
    return session_password


def _layout(runtime: Runtime, session_password: gr.State) -> dict[str, Any]:
    """Counts, filters, pager, the grid beside the editor, then the panels; returns the components by name."""
    counts = gr.Markdown(elem_id="dataset-counts")
    filters = _filter_row()
    pager = _pager_row()
    with gr.Row(elem_id="dataset-workspace"):
        with gr.Column(scale=3):
            with gr.Row(equal_height=True):
                select_mode = gr.Checkbox(
                    label="Select mode: click thumbnails to pick them for bulk actions", elem_id="dataset-select-mode"
                )
                picked_note = gr.Markdown(bulk_actions.selection_note([]), elem_id="dataset-picked")
            empty_note = gr.Markdown(visible=False, elem_id="dataset-empty")
            clear = gr.Button("Clear filters", size="sm", visible=False, elem_id="dataset-clear-filters")
            gr.Markdown("**Collection** · hover or focus a tile for its whole caption", elem_id="dataset-grid-title")
            grid = gr.Gallery(
                label="Collection",
                show_label=False,  # Gradio draws a gallery's label over its first row, where the badges are
                columns=6,
                height=620,
                allow_preview=False,
                interactive=False,  # a browse grid: images are added under Add images, deleted by a bulk action
                elem_id="dataset-grid",
            )
            with gr.Accordion("Bulk actions", open=False):
                bulk = dataset_bulk_panel.build()
        with gr.Column(scale=2, elem_id="dataset-editor"):
            editor = dataset_editor.build()
            frame_view.dataset_frame_panel(runtime, editor["id"], session_password)  # a car's traffic frame
    with gr.Accordion("Import captions (CSV / JSONL)", open=False):
        imported = dataset_files_panel.build_import(runtime, session_password)
    with gr.Accordion("Export", open=False, elem_id="dataset-export"):
        dataset_files_panel.build_export(runtime, session_password)
    with gr.Accordion("Add images", open=False):
        uploaded = dataset_files_panel.build_upload(runtime, session_password)
    with gr.Accordion("Claude batch jobs", open=False):
        collected = caption_jobs_panel.build(runtime, session_password)
    from carmatch.ui import curation_panel  # likely mistakes, near-duplicates, the map (#26)

    curated = curation_panel.build(runtime, session_password, editor["outputs"], dataset_editor.editor_values)
    bulk.update(mode=select_mode, note=picked_note)
    page_ids, page_versions = gr.State([]), gr.State({})
    return {
        "filters": filters,
        "pager": pager,
        "grid": grid,
        "clear": clear,
        "bulk": bulk,
        "editor": editor,
        "page_ids": page_ids,
        "page_versions": page_versions,
        "changes": (imported, uploaded, collected, curated),  # events after which the grid is redrawn
        # the grid's outputs, in _grid_values' order
        "grid_outputs": [grid, page_ids, bulk["selected"], pager["info"], pager["number"], counts]
        + [page_versions, empty_note, clear],
    }


def _wire(demo: gr.Blocks, runtime: Runtime, session_password: gr.State, ui: dict[str, Any]) -> None:
    """The grid, editor, stepping, bulk panel, links, keys and lock."""
    filters, pager, editor, bulk, grid_outputs = (
        ui["filters"],
        ui["pager"],
        ui["editor"],
        ui["bulk"],
        ui["grid_outputs"],
    )
    attributes = filters[1 : 1 + len(FILTER_ATTRIBUTES)]
    show_page = _wire_grid(runtime, filters, pager, grid_outputs, editor["id"])

    def on_changed(number: float, current: str, *values: Any) -> tuple[Any, ...]:
        """The grid's page and the filters' choices after something changed the collection."""
        page = show_page(number, current, *values)
        choices = actions.filter_choices(runtime)  # an import or upload may bring new colours, makes…
        return (*page, *[gr.update(choices=choices[key]) for key in FILTER_ATTRIBUTES])

    def refresh_after(event: Any) -> None:
        """Redraw the grid's page and refresh the filter choices once ``event`` has changed the collection."""
        inputs = [pager["number"], editor["id"], *filters]
        event.then(on_changed, inputs, [*grid_outputs, *attributes], api_visibility="private")

    values = dataset_editor.editor_values
    dataset_selection.wire(runtime, ui["grid"], ui["page_ids"], bulk, editor["outputs"], values)
    dataset_editor.wire(runtime, session_password, filters, editor, refresh_after)

    def page_values(query: Any, image_id: str, page: int) -> tuple[Any, ...]:
        return _highlight_values(runtime, query, image_id, page)

    stepping = (editor["image_prev"], editor["image_next"])
    dataset_selection.wire_stepping(
        runtime, stepping, editor["id"], filters, editor["outputs"], values, pager["number"], grid_outputs, page_values
    )
    dataset_bulk_panel.wire(demo, runtime, session_password, filters, bulk, ui["page_versions"], refresh_after)
    for event in ui["changes"]:
        refresh_after(event)
    cleared = ui["clear"].click(lambda: DatasetLink().inputs(), None, filters, api_visibility="private")
    cleared.then(lambda *values: show_page(1, "", *values), filters, grid_outputs, api_visibility="private")
    _wire_first_load(demo, runtime, grid_outputs, filters, editor["outputs"])
    _wire_url(pager["number"], editor["id"], filters)
    for script in (dataset_selection.KEYS_JS, dataset_selection.LOCAL_DATES_JS, dataset_selection.GRID_BADGES_JS):
        demo.load(None, js=script)
    editable = [editor["caption"], *editor["attrs"], *[editor[b] for b in dataset_editor.EDIT_BUTTONS]]
    _wire_lock(session_password, [*editable, bulk["run"], bulk["undo"]])


def _wire_url(page_number: gr.Number, current: gr.State, filters: list[Any]) -> None:
    """Every page turn, filter change and opened image writes itself into the address bar."""
    for component in (page_number, current, *filters):
        component.change(None, [page_number, current, *filters], None, js=WRITE_URL_JS)


def _wire_lock(session_password: gr.State, editable: list[Any]) -> None:
    """Locked means visibly locked: what cannot act is disabled until the session unlocks."""

    def on_login_change(stored: str) -> tuple[Any, ...]:
        return tuple(gr.update(interactive=bool(stored)) for _ in editable)

    session_password.change(on_login_change, [session_password], editable, api_visibility="private")


def _wire_grid(
    runtime: Runtime, filters: list[Any], pager: dict[str, Any], grid_outputs: list[Any], current: gr.State
) -> Any:
    """Filters and pager redraw the grid; returns the page handler (page number, open image id, *filters)."""

    @user_errors
    def show_page(number: float, open_id: str, *values: Any) -> tuple[Any, ...]:
        query = actions.query_from_inputs(values)
        view = actions.load_page(runtime, query, int(number or 1))
        return _grid_values(view, actions.counts_markdown(runtime), open_id)

    def first_page(open_id: str, *values: Any) -> tuple[Any, ...]:
        return show_page(1, open_id, *values)

    def shifted(delta: int) -> Any:
        def handler(number: float, open_id: str, *values: Any) -> tuple[Any, ...]:
            return show_page(max(1, int(number or 1) + delta), open_id, *values)

        return handler

    text_f, *dropdowns = filters
    private = {"api_visibility": "private"}
    for component in dropdowns:
        component.input(first_page, [current, *filters], grid_outputs, **private)
    text_f.submit(first_page, [current, *filters], grid_outputs, **private)
    paged = [pager["number"], current, *filters]
    pager["prev"].click(shifted(-1), paged, grid_outputs, **private)
    pager["next"].click(shifted(+1), paged, grid_outputs, **private)
    pager["number"].submit(show_page, paged, grid_outputs, **private)
    pager["refresh"].click(show_page, paged, grid_outputs, **private)
    return show_page


def _wire_first_load(
    demo: gr.Blocks, runtime: Runtime, grid_outputs: list[Any], filters: list[Any], editor_outputs: list[Any]
) -> None:
    """On page load: the filters, page and image a link names (else the first page), the counts, the choices."""
    attributes = filters[1 : 1 + len(FILTER_ATTRIBUTES)]

    opened_url = gr.Textbox(visible=False)  # filled in the browser: the address as the page was opened

    def on_load(url: str) -> tuple[Any, ...]:
        link = link_from_url(params_of(url)) or DatasetLink()
        editor: tuple[Any, ...] = tuple(gr.update() for _ in editor_outputs)
        try:
            choices = actions.filter_choices(runtime)
            try:
                query = actions.query_from_inputs(link.inputs())
                view = actions.load_page(runtime, query, link.page)
            except CarmatchError as exc:  # a hand-made link with a bad filter: the plain first page
                log.info("Dataset link ignored: %s", exc)
                link, query = DatasetLink(), curation.Query()
                view = actions.load_page(runtime, query)
            if link.image:
                opened = actions.open_image(runtime, link.image)
                editor = dataset_editor.editor_values(opened)
                place = actions.grid_place(runtime, query, opened.image_id) if opened.image_id else None
                if place and place[0] != view.page:
                    view = actions.load_page(runtime, query, place[0])
            grid_values = _grid_values(view, actions.counts_markdown(runtime), link.image)
        except CarmatchError as exc:
            log.warning("Dataset tab could not load: %s", exc)
            choices = {key: [ANY] for key in FILTER_ATTRIBUTES}
            note = f"⚠️ {as_text(for_browser(exc))}"
            grid_values = ([], [], gr.update(choices=[], value=[]), note, 1, "", {}, gr.update(), gr.update())
        updates = [gr.update(choices=choices[key]) for key in FILTER_ATTRIBUTES]
        return (*grid_values, *updates, *link.inputs(), *editor)

    outputs = [*grid_outputs, *attributes, *filters, *editor_outputs]
    demo.load(on_load, [opened_url], outputs, js=OPENED_URL_JS, api_visibility="private")
