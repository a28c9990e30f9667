"""The Dataset tab: browse, review and edit captions, bulk actions, import/export, add images.

Layout and wiring only; the logic is in :mod:`carmatch.ui.dataset_actions` (plain functions), and
the tab's panels keep the same rule: :mod:`~carmatch.ui.dataset_files_panel` (import, export, add
images) and :mod:`~carmatch.ui.caption_jobs_panel` (Claude batch jobs), each with its ``_actions``.
Browsing is open to everyone; every write re-checks the password held in the session's gr.State.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import gradio as gr

from carmatch.catalog import ATTRIBUTE_COLUMNS
from carmatch.catalog.schema import FILTER_ATTRIBUTES
from carmatch.dataset import curation
from carmatch.errors import CarmatchError
from carmatch.runtime import Runtime
from carmatch.ui import caption_jobs_panel, dataset_files_panel, dataset_selection, frame_view, server_panel
from carmatch.ui import dataset_actions as actions
from carmatch.ui.common import progress_adapter, unlock_row, user_errors
from carmatch.ui.phrasing import FIELD_LABELS, as_text, for_browser

log = logging.getLogger(__name__)

ANY = actions.ANY
EDIT_BUTTONS = ("save", "approve", "reject", "undo")  # disabled while the tab is locked
EDITOR_OUTPUTS = 8 + len(ATTRIBUTE_COLUMNS)  # id, version, image, meta, caption, attributes, history, message, conflict


def _editor_values(view: actions.EditorView) -> tuple[Any, ...]:
    """An EditorView as the values of the editor's output components, in order."""
    return (
        view.image_id,
        view.version,
        view.image,
        view.meta,
        view.caption,
        *[view.attributes.get(key, "") for key in ATTRIBUTE_COLUMNS],
        view.history,
        view.message,
        gr.update(value=view.conflict, visible=bool(view.conflict)),
    )


def _grid_values(view: actions.PageView, counts: str) -> tuple[Any, ...]:
    """A PageView as the values of the grid's output components, in order."""
    return (
        view.gallery,
        view.ids,
        gr.update(choices=view.choices, value=[]),
        view.info,
        view.page,
        counts,
    )


def _filter_row() -> list[Any]:
    """The filter inputs, in ``actions.QUERY_INPUTS`` order."""
    with gr.Row():
        text_f = gr.Textbox(label="Caption contains", placeholder="red pickup", scale=2, elem_id="dataset-filter-text")
        attributes = [
            gr.Dropdown([ANY], value=ANY, label=key.replace("_", " "), allow_custom_value=True, min_width=110)
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
            "info": gr.Markdown(elem_id="dataset-page-info"),
            "refresh": gr.Button("Refresh", size="sm"),
        }


def _bulk_panel() -> dict[str, Any]:
    """Selection on this page, scope, action, delete options, the run button and its report."""
    # holds the ids picked on the thumbnails (select mode); shown as ☑ marks on the grid, not as a list
    selected = gr.CheckboxGroup([], label="Select images on this page", elem_id="dataset-selected", visible=False)
    with gr.Row():
        select_all = gr.Button("Select page", size="sm")
        select_none = gr.Button("Clear", size="sm")
    scope = gr.Radio([actions.SCOPE_SELECTED, actions.SCOPE_MATCHING], value=actions.SCOPE_SELECTED, label="Apply to")
    action = gr.Radio(list(actions.BULK_ACTIONS), value="approve", label="Action")
    with gr.Row():
        delete_files = gr.Checkbox(label="also delete uploaded files (files elsewhere are never deleted)")
        overturn = gr.Checkbox(label="also approve rejected images")
        confirm = gr.Checkbox(
            label="confirm (needed to delete, or to act on everything matching)", elem_id="bulk-confirm"
        )
    run = gr.Button("Run bulk action", variant="stop", elem_id="dataset-bulk-run", interactive=False)
    report = gr.Textbox(label="Bulk report", lines=4, interactive=False, elem_id="bulk-report")
    return {
        "selected": selected,
        "select_all": select_all,
        "select_none": select_none,
        "inputs": [action, scope, selected, delete_files, confirm, overturn],
        "run": run,
        "report": report,
    }


def _editor() -> dict[str, Any]:
    """The editor: the picture large, caption, attributes, buttons, messages and history."""
    big = gr.Image(label="Selected", interactive=False, height=360, elem_id="dataset-image")
    meta = gr.Markdown("_Select an image in the grid._", elem_id="dataset-meta")
    caption = gr.Textbox(
        label=f"{FIELD_LABELS['caption']} (Enter = save, approve and go to the next unreviewed)",
        lines=1,
        max_lines=6,
        max_length=curation.MAX_CAPTION_CHARS,
        elem_id="dataset-caption",
        interactive=False,
    )
    with gr.Row():
        attr_boxes = [
            gr.Textbox(label=key.replace("_", " "), min_width=90, elem_id=f"dataset-attr-{key}", interactive=False)
            for key in ATTRIBUTE_COLUMNS
        ]
    with gr.Row():
        buttons = {
            "save": gr.Button("Save", variant="primary", elem_id="dataset-save", interactive=False),
            "approve": gr.Button("Approve ✓", elem_id="dataset-approve", interactive=False),
            "reject": gr.Button("Reject ✗", elem_id="dataset-reject", interactive=False),
            "skip": gr.Button("Skip →", elem_id="dataset-skip"),
            "undo": gr.Button("Undo ↩", elem_id="dataset-undo", interactive=False),
            "reload": gr.Button("Reload", elem_id="dataset-reload"),
        }
    with gr.Row():
        buttons["image_prev"] = gr.Button("◀ Previous image", size="sm", elem_id="dataset-image-prev")
        buttons["image_next"] = gr.Button("Next image ▶", size="sm", elem_id="dataset-image-next")
    gr.Markdown(dataset_selection.KEYS_HELP, elem_id="dataset-keys")
    message = gr.Markdown(elem_id="dataset-message")
    conflict = gr.Markdown(visible=False, elem_id="dataset-conflict")
    history = gr.Dataframe(
        headers=actions.HISTORY_HEADERS,
        label="History (newest first)",
        interactive=False,
        wrap=True,
        column_widths=["46%", "20%", "6%", "12%", "10%", "6%"],
        elem_id="dataset-history",
    )
    current_id, current_version = gr.State(""), gr.State(-1)
    outputs = [current_id, current_version, big, meta, caption, *attr_boxes, history, message, conflict]
    return {
        "id": current_id,
        "version": current_version,
        "caption": caption,
        "attrs": attr_boxes,
        **buttons,
        "outputs": outputs,
    }


def build(demo: gr.Blocks, runtime: Runtime, session_password: gr.State | None = None) -> gr.State:
    """Lay out the Dataset tab inside the current gr.Blocks context and wire its events; returns the login state."""
    session_password = unlock_row(runtime, "Unlock editing", "dataset", session_password)
    server_panel.build(runtime, session_password)
    counts = gr.Markdown(elem_id="dataset-counts")
    filters = _filter_row()
    pager = _pager_row()
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Row(equal_height=True):
                select_mode = gr.Checkbox(
                    label="Select mode: click thumbnails to pick them for bulk actions", elem_id="dataset-select-mode"
                )
                picked_note = gr.Markdown(actions.selection_note([]), elem_id="dataset-picked")
            grid = gr.Gallery(
                label="Collection (✅ approved · ⛔ rejected · • unreviewed)",
                columns=6,
                height=620,
                allow_preview=False,
                interactive=False,  # a browse grid: images are added under Add images, deleted by a bulk action
                elem_id="dataset-grid",
            )
            with gr.Accordion("Bulk actions", open=False):
                bulk = _bulk_panel()
        with gr.Column(scale=2):
            editor = _editor()
            frame_view.dataset_frame_panel(runtime, editor["id"], session_password)  # a car's traffic frame
    with gr.Accordion("Import captions (CSV / JSONL)", open=False):
        imported = dataset_files_panel.build_import(runtime, session_password)
    with gr.Accordion("Export", open=False, elem_id="dataset-export"):
        dataset_files_panel.build_export(runtime, session_password)
    with gr.Accordion("Add images", open=False):
        uploaded = dataset_files_panel.build_upload(runtime, session_password)
    with gr.Accordion("Claude batch jobs", open=False):
        collected = caption_jobs_panel.build(runtime, session_password)

    page_ids = gr.State([])
    grid_outputs = [grid, page_ids, bulk["selected"], pager["info"], pager["number"], counts]
    show_page = _wire_grid(runtime, filters, pager, grid_outputs)

    def refresh_after(event: Any) -> None:
        """Redraw the grid's page once ``event`` has changed the collection."""
        event.then(show_page, [pager["number"], *filters], grid_outputs, api_visibility="private")

    bulk.update(mode=select_mode, note=picked_note)
    dataset_selection.wire(runtime, grid, page_ids, bulk, editor["outputs"], _editor_values)
    _wire_editor(runtime, session_password, filters, editor, refresh_after)
    stepping = (editor["image_prev"], editor["image_next"])
    dataset_selection.wire_stepping(runtime, stepping, editor["id"], filters, editor["outputs"], _editor_values)
    _wire_bulk(runtime, session_password, filters, bulk, refresh_after)
    for event in (imported, uploaded, collected):
        refresh_after(event)
    from carmatch.ui import curation_panel  # likely mistakes, near-duplicates, the map (#26)

    refresh_after(curation_panel.build(runtime, session_password, editor["outputs"], _editor_values))
    _wire_first_load(demo, runtime, grid_outputs, filters[1 : 1 + len(FILTER_ATTRIBUTES)])
    demo.load(None, js=dataset_selection.KEYS_JS)
    demo.load(None, js=dataset_selection.LOCAL_DATES_JS)
    _wire_lock(session_password, [editor["caption"], *editor["attrs"], *[editor[b] for b in EDIT_BUTTONS], bulk["run"]])
    return session_password


def _wire_lock(session_password: gr.State, editable: list[Any]) -> None:
    """Locked means visibly locked: what cannot act is disabled until the session unlocks."""

    def on_login_change(stored: str) -> tuple[Any, ...]:
        return tuple(gr.update(interactive=bool(stored)) for _ in editable)

    session_password.change(on_login_change, [session_password], editable, api_visibility="private")


def _kept_on_refusal(fn: Any) -> Any:
    """Decorate an editor handler: a refusal shows in the message line and leaves every other field as it was."""

    @functools.wraps(fn)
    def wrapper(*args: Any) -> tuple[Any, ...]:
        try:
            return fn(*args)  # type: ignore[no-any-return]
        except CarmatchError as exc:
            log.info("%s refused: %s", fn.__name__, exc)
            kept: list[Any] = [gr.update() for _ in range(EDITOR_OUTPUTS)]
            kept[-2] = f"❌ {as_text(for_browser(exc))}"
            return tuple(kept)

    return wrapper


def _wire_grid(runtime: Runtime, filters: list[Any], pager: dict[str, Any], grid_outputs: list[Any]) -> Any:
    """Filters and pager redraw the grid; returns the page handler (page number, *filters)."""

    @user_errors
    def show_page(number: float, *values: Any) -> tuple[Any, ...]:
        query = actions.query_from_inputs(values)
        return _grid_values(actions.load_page(runtime, query, int(number or 1)), actions.counts_markdown(runtime))

    def first_page(*values: Any) -> tuple[Any, ...]:
        return show_page(1, *values)

    def shifted(delta: int) -> Any:
        def handler(number: float, *values: Any) -> tuple[Any, ...]:
            return show_page(max(1, int(number or 1) + delta), *values)

        return handler

    text_f, *dropdowns = filters
    for component in dropdowns:
        component.change(first_page, filters, grid_outputs, api_visibility="private")
    text_f.submit(first_page, filters, grid_outputs, api_visibility="private")
    paged = [pager["number"], *filters]
    pager["prev"].click(shifted(-1), paged, grid_outputs, api_visibility="private")
    pager["next"].click(shifted(+1), paged, grid_outputs, api_visibility="private")
    pager["number"].submit(show_page, paged, grid_outputs, api_visibility="private")
    pager["refresh"].click(show_page, paged, grid_outputs, api_visibility="private")
    return show_page


def _wire_editor(
    runtime: Runtime, session_password: gr.State, filters: list[Any], editor: dict[str, Any], refresh_after: Any
) -> None:
    """Save, approve (button or Enter), reject, skip, undo and reload; writes redraw the grid."""
    n_attrs = len(ATTRIBUTE_COLUMNS)

    @_kept_on_refusal
    def on_save(pw: str, image_id: str, version: int, text: str, *rest: Any) -> tuple[Any, ...]:
        attrs, query = rest[:n_attrs], actions.query_from_inputs(rest[n_attrs:])
        return _editor_values(actions.save(runtime, pw, image_id, version, text, attrs, query))

    @_kept_on_refusal
    def on_approve(pw: str, image_id: str, version: int, text: str, *rest: Any) -> tuple[Any, ...]:
        attrs, query = rest[:n_attrs], actions.query_from_inputs(rest[n_attrs:])
        view = actions.save(runtime, pw, image_id, version, text, attrs, query, "approved", advance=True)
        return _editor_values(view)

    @_kept_on_refusal
    def on_reject(pw: str, image_id: str, version: int, *values: Any) -> tuple[Any, ...]:
        view = actions.review(runtime, pw, image_id, version, "rejected", actions.query_from_inputs(values))
        return _editor_values(view)

    @user_errors
    def on_skip(image_id: str, *values: Any) -> tuple[Any, ...]:
        return _editor_values(actions.skip(runtime, image_id, actions.query_from_inputs(values)))

    @_kept_on_refusal
    def on_undo(pw: str, image_id: str, version: int) -> tuple[Any, ...]:
        return _editor_values(actions.undo(runtime, pw, image_id, version))

    def on_reload(image_id: str) -> tuple[Any, ...]:
        return _editor_values(actions.open_image(runtime, image_id or None))

    outputs, current = editor["outputs"], [session_password, editor["id"], editor["version"]]
    edit_inputs = [*current, editor["caption"], *editor["attrs"], *filters]
    private = {"api_visibility": "private"}
    refresh_after(editor["save"].click(on_save, edit_inputs, outputs, **private))
    refresh_after(editor["approve"].click(on_approve, edit_inputs, outputs, **private))
    refresh_after(editor["caption"].submit(on_approve, edit_inputs, outputs, **private))
    refresh_after(editor["reject"].click(on_reject, [*current, *filters], outputs, **private))
    editor["skip"].click(on_skip, [editor["id"], *filters], outputs, **private)
    refresh_after(editor["undo"].click(on_undo, current, outputs, **private))
    editor["reload"].click(on_reload, [editor["id"]], outputs, **private)


def _wire_bulk(
    runtime: Runtime, session_password: gr.State, filters: list[Any], bulk: dict[str, Any], refresh_after: Any
) -> None:
    """Run the chosen bulk action on the selection or on everything matching the filters."""

    def on_bulk(
        pw: str,
        what: str,
        where: str,
        ids: list[str],
        remove_files: bool,
        confirmed: bool,
        overturn: bool,
        *values: Any,
        progress: gr.Progress = gr.Progress(),
    ) -> str:
        query, report = actions.query_from_inputs(values), progress_adapter(progress)
        try:
            return actions.bulk(
                runtime, pw, what, where, ids, query, remove_files, confirmed, report, overturn_rejected=overturn
            )
        except CarmatchError as exc:  # shown in the report box (which stays readable), nothing changed
            return f"❌ {for_browser(exc)}"

    inputs = [session_password, *bulk["inputs"], *filters]
    refresh_after(bulk["run"].click(on_bulk, inputs, [bulk["report"]], api_visibility="private"))


def _wire_first_load(demo: gr.Blocks, runtime: Runtime, grid_outputs: list[Any], attributes: list[Any]) -> None:
    """On page load: the first page, the counts and the attribute filters' choices."""

    def on_load() -> tuple[Any, ...]:
        try:
            choices = actions.filter_choices(runtime)
            grid_values = _grid_values(actions.load_page(runtime, curation.Query()), actions.counts_markdown(runtime))
        except CarmatchError as exc:
            log.warning("Dataset tab could not load: %s", exc)
            choices = {key: [ANY] for key in FILTER_ATTRIBUTES}
            grid_values = ([], [], gr.update(choices=[], value=[]), f"⚠️ {as_text(for_browser(exc))}", 1, "")
        return (*grid_values, *[gr.update(choices=choices[key]) for key in FILTER_ATTRIBUTES])

    demo.load(on_load, None, [*grid_outputs, *attributes], api_visibility="private")
