"""The Dataset tab: browse, review and edit captions, bulk actions, import/export, add images.

Layout and wiring only; the logic is in :mod:`carmatch.ui.dataset_actions` (plain functions).
Browsing is open to everyone; every write re-checks the password held in the session's gr.State.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from carmatch.catalog import ATTRIBUTE_COLUMNS
from carmatch.dataset import curation
from carmatch.errors import CarmatchError
from carmatch.runtime import Runtime
from carmatch.ui import caption_jobs_panel
from carmatch.ui import dataset_actions as actions
from carmatch.ui.common import progress_adapter, user_errors

log = logging.getLogger(__name__)

ANY = actions.ANY
FILTER_ATTRIBUTES = ("color", "body_type", "make", "viewpoint")


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


def build(demo: gr.Blocks, runtime: Runtime) -> None:
    """Lay out the Dataset tab inside the current gr.Blocks context and wire its events."""
    session_password = gr.State("")
    page_ids = gr.State([])
    current_id = gr.State("")
    current_version = gr.State(-1)
    plan = gr.State([])

    with gr.Row(equal_height=True):
        password = gr.Textbox(
            label="Admin password", type="password", scale=3, elem_id="dataset-password", max_length=200
        )
        unlock_btn = gr.Button("Unlock editing", scale=1, elem_id="dataset-unlock")
    access = gr.Markdown(actions.access_note(runtime), elem_id="dataset-access")
    counts = gr.Markdown(elem_id="dataset-counts")

    with gr.Row():
        text_f = gr.Textbox(label="Caption contains", placeholder="red pickup", scale=2, elem_id="dataset-filter-text")
        attr_f = {
            key: gr.Dropdown([ANY], value=ANY, label=key.replace("_", " "), allow_custom_value=True, min_width=110)
            for key in FILTER_ATTRIBUTES
        }
        source_f = gr.Dropdown([ANY, *curation.SOURCE_FILTERS], value=ANY, label="source", min_width=120)
        state_f = gr.Dropdown([ANY, *curation.STATE_FILTERS], value=ANY, label="review state", min_width=120)
        sort_f = gr.Dropdown(list(curation.SORTS), value=curation.DEFAULT_SORT, label="sort", min_width=140)
    dropdowns: list[gr.Dropdown] = [*attr_f.values(), source_f, state_f, sort_f]
    filters = [text_f, *dropdowns]
    with gr.Row(equal_height=True):
        prev_btn = gr.Button("◀ Previous", size="sm")
        page_num = gr.Number(value=1, precision=0, label="page", minimum=1, min_width=80)
        next_btn = gr.Button("Next ▶", size="sm")
        page_info = gr.Markdown(elem_id="dataset-page-info")
        refresh_btn = gr.Button("Refresh", size="sm")

    with gr.Row():
        with gr.Column(scale=3):
            grid = gr.Gallery(
                label="Collection (✅ approved · ⛔ rejected · • unreviewed)",
                columns=6,
                height=620,
                allow_preview=False,
                elem_id="dataset-grid",
            )
            with gr.Accordion("Bulk actions", open=False):
                selected = gr.CheckboxGroup([], label="Select images on this page", elem_id="dataset-selected")
                with gr.Row():
                    select_all = gr.Button("Select page", size="sm")
                    select_none = gr.Button("Clear", size="sm")
                scope = gr.Radio(
                    [actions.SCOPE_SELECTED, actions.SCOPE_MATCHING], value=actions.SCOPE_SELECTED, label="Apply to"
                )
                action = gr.Radio(list(actions.BULK_ACTIONS), value="approve", label="Action")
                with gr.Row():
                    delete_files = gr.Checkbox(label="also delete uploaded files (files elsewhere are never deleted)")
                    confirm_delete = gr.Checkbox(label="confirm delete")
                bulk_btn = gr.Button("Run bulk action", variant="stop", elem_id="dataset-bulk-run")
                bulk_report = gr.Textbox(label="Bulk report", lines=4, interactive=False)
        with gr.Column(scale=2):
            big = gr.Image(label="Selected", interactive=False, height=360, elem_id="dataset-image")
            meta = gr.Markdown("_Select an image in the grid._", elem_id="dataset-meta")
            caption = gr.Textbox(
                label="Caption (Enter = save, approve and go to the next unreviewed)",
                lines=1,
                max_lines=6,
                max_length=curation.MAX_CAPTION_CHARS,
                elem_id="dataset-caption",
            )
            with gr.Row():
                attr_boxes = [
                    gr.Textbox(label=key.replace("_", " "), min_width=90, elem_id=f"dataset-attr-{key}")
                    for key in ATTRIBUTE_COLUMNS
                ]
            with gr.Row():
                save_btn = gr.Button("Save", variant="primary", elem_id="dataset-save")
                approve_btn = gr.Button("Approve ✓", elem_id="dataset-approve")
                reject_btn = gr.Button("Reject ✗", elem_id="dataset-reject")
                skip_btn = gr.Button("Skip →", elem_id="dataset-skip")
                undo_btn = gr.Button("Undo ↩", elem_id="dataset-undo")
                reload_btn = gr.Button("Reload", elem_id="dataset-reload")
            message = gr.Markdown(elem_id="dataset-message")
            conflict = gr.Markdown(visible=False, elem_id="dataset-conflict")
            history = gr.Dataframe(
                headers=actions.HISTORY_HEADERS, label="History (newest first)", interactive=False, wrap=True
            )

    with gr.Accordion("Import captions (CSV / JSONL)", open=False):
        gr.Markdown(
            "Columns: `file` (path as ingested, absolute or relative to the ingested folder) or `id`, then "
            "`caption`, optional `color`, `body_type`, `make`, `model`, `viewpoint`. Imported captions start "
            "unreviewed and never replace a caption a person wrote."
        )
        import_file = gr.File(label="Captions file", file_types=[".csv", ".jsonl", ".json"], type="filepath")
        preview_btn = gr.Button("Preview changes")
        preview_text = gr.Textbox(label="Preview", lines=6, interactive=False)
        preview_table = gr.Dataframe(
            headers=["line", "image", "current caption", "new caption", "attributes"], interactive=False, wrap=True
        )
        apply_btn = gr.Button("Apply import", variant="primary")
        import_report = gr.Textbox(label="Import report", lines=3, interactive=False)

    with gr.Accordion("Export", open=False):
        with gr.Row():
            fmt = gr.Radio(["csv", "jsonl", "titan"], value="jsonl", label="Format")
            include_unreviewed = gr.Checkbox(label="include unreviewed (never rejected)")
            s3_prefix = gr.Textbox(label="S3 prefix (titan)", placeholder="s3://my-bucket/carmatch/titan/")
        export_btn = gr.Button("Export")
        export_files = gr.File(label="Download", file_count="multiple", interactive=False)
        export_report = gr.Textbox(label="Export report", lines=4, interactive=False)

    with gr.Accordion("Add images", open=False):
        upload_files = gr.File(
            label="Images or .zip of images", file_count="multiple", file_types=["image", ".zip"], type="filepath"
        )
        upload_btn = gr.Button("Add to the collection", variant="primary")
        upload_report = gr.Textbox(label="Upload report", lines=4, interactive=False)

    with gr.Accordion("Claude batch jobs", open=False):
        batch_collected = caption_jobs_panel.build(runtime, session_password)

    grid_outputs = [grid, page_ids, selected, page_info, page_num, counts]
    editor_outputs = [current_id, current_version, big, meta, caption, *attr_boxes, history, message, conflict]

    # -- access ------------------------------------------------------------------------------
    def on_unlock(given: str) -> tuple[str, str, Any]:
        stored, note = actions.unlock(runtime, given)
        return stored, note, gr.update(value="")

    unlock_btn.click(on_unlock, [password], [session_password, access, password], api_visibility="private")
    password.submit(on_unlock, [password], [session_password, access, password], api_visibility="private")

    # -- grid --------------------------------------------------------------------------------
    @user_errors
    def show_page(number: float, *values: Any) -> tuple[Any, ...]:
        query = actions.make_query(*values)
        return _grid_values(actions.load_page(runtime, query, int(number or 1)), actions.counts_markdown(runtime))

    def first_page(*values: Any) -> tuple[Any, ...]:
        return show_page(1, *values)

    def shifted(delta: int) -> Any:
        def handler(number: float, *values: Any) -> tuple[Any, ...]:
            return show_page(max(1, int(number or 1) + delta), *values)

        return handler

    for component in dropdowns:
        component.change(first_page, filters, grid_outputs, api_visibility="private")
    text_f.submit(first_page, filters, grid_outputs, api_visibility="private")
    prev_btn.click(shifted(-1), [page_num, *filters], grid_outputs, api_visibility="private")
    next_btn.click(shifted(+1), [page_num, *filters], grid_outputs, api_visibility="private")
    page_num.submit(show_page, [page_num, *filters], grid_outputs, api_visibility="private")
    refresh_btn.click(show_page, [page_num, *filters], grid_outputs, api_visibility="private")

    def on_select(ids: list[str], evt: gr.SelectData) -> tuple[Any, ...]:
        index = evt.index if isinstance(evt.index, int) else evt.index[0]
        image_id = ids[index] if ids and 0 <= index < len(ids) else None
        return _editor_values(actions.open_image(runtime, image_id))

    grid.select(on_select, [page_ids], editor_outputs, api_visibility="private")
    select_all.click(lambda ids: gr.update(value=list(ids)), [page_ids], [selected], api_visibility="private")
    select_none.click(lambda: gr.update(value=[]), None, [selected], api_visibility="private")

    # -- editor ------------------------------------------------------------------------------
    def refresh_after(event: Any) -> None:
        event.then(show_page, [page_num, *filters], grid_outputs, api_visibility="private")

    @user_errors
    def on_save(pw: str, image_id: str, version: int, text: str, *rest: Any) -> tuple[Any, ...]:
        attrs, query = rest[: len(ATTRIBUTE_COLUMNS)], actions.make_query(*rest[len(ATTRIBUTE_COLUMNS) :])
        return _editor_values(actions.save(runtime, pw, image_id, version, text, attrs, query))

    @user_errors
    def on_approve(pw: str, image_id: str, version: int, text: str, *rest: Any) -> tuple[Any, ...]:
        attrs, query = rest[: len(ATTRIBUTE_COLUMNS)], actions.make_query(*rest[len(ATTRIBUTE_COLUMNS) :])
        view = actions.save(runtime, pw, image_id, version, text, attrs, query, "approved", advance=True)
        return _editor_values(view)

    @user_errors
    def on_reject(pw: str, image_id: str, version: int, *values: Any) -> tuple[Any, ...]:
        view = actions.review(runtime, pw, image_id, version, "rejected", actions.make_query(*values))
        return _editor_values(view)

    @user_errors
    def on_skip(image_id: str, *values: Any) -> tuple[Any, ...]:
        return _editor_values(actions.skip(runtime, image_id, actions.make_query(*values)))

    @user_errors
    def on_undo(pw: str, image_id: str, version: int) -> tuple[Any, ...]:
        return _editor_values(actions.undo(runtime, pw, image_id, version))

    def on_reload(image_id: str) -> tuple[Any, ...]:
        return _editor_values(actions.open_image(runtime, image_id or None))

    edit_inputs = [session_password, current_id, current_version, caption, *attr_boxes, *filters]
    refresh_after(save_btn.click(on_save, edit_inputs, editor_outputs, api_visibility="private"))
    refresh_after(approve_btn.click(on_approve, edit_inputs, editor_outputs, api_visibility="private"))
    refresh_after(caption.submit(on_approve, edit_inputs, editor_outputs, api_visibility="private"))
    refresh_after(
        reject_btn.click(
            on_reject,
            [session_password, current_id, current_version, *filters],
            editor_outputs,
            api_visibility="private",
        )
    )
    skip_btn.click(on_skip, [current_id, *filters], editor_outputs, api_visibility="private")
    refresh_after(
        undo_btn.click(
            on_undo, [session_password, current_id, current_version], editor_outputs, api_visibility="private"
        )
    )
    reload_btn.click(on_reload, [current_id], editor_outputs, api_visibility="private")

    refresh_after(batch_collected)

    # -- bulk --------------------------------------------------------------------------------
    @user_errors
    def on_bulk(
        pw: str,
        what: str,
        where: str,
        ids: list[str],
        remove_files: bool,
        confirmed: bool,
        *values: Any,
        progress: gr.Progress = gr.Progress(),
    ) -> str:
        query = actions.make_query(*values)
        return actions.bulk(runtime, pw, what, where, ids, query, remove_files, confirmed, progress_adapter(progress))

    refresh_after(
        bulk_btn.click(
            on_bulk,
            [session_password, action, scope, selected, delete_files, confirm_delete, *filters],
            [bulk_report],
            api_visibility="private",
        )
    )

    # -- import / export / upload -------------------------------------------------------------
    @user_errors
    def on_preview(pw: str, file: str | None) -> tuple[str, list[list[Any]], list[dict[str, Any]]]:
        return actions.import_preview(runtime, pw, file)

    @user_errors
    def on_apply(
        pw: str, planned: list[dict[str, Any]], progress: gr.Progress = gr.Progress()
    ) -> tuple[str, list[Any]]:
        return actions.import_apply(runtime, pw, planned, progress_adapter(progress)), []

    preview_btn.click(
        on_preview, [session_password, import_file], [preview_text, preview_table, plan], api_visibility="private"
    )
    refresh_after(apply_btn.click(on_apply, [session_password, plan], [import_report, plan], api_visibility="private"))

    @user_errors
    def on_export(
        pw: str, chosen: str, unreviewed: bool, prefix: str, progress: gr.Progress = gr.Progress()
    ) -> tuple[list[str], str]:
        return actions.export(runtime, pw, chosen, unreviewed, prefix, progress_adapter(progress))

    export_btn.click(
        on_export,
        [session_password, fmt, include_unreviewed, s3_prefix],
        [export_files, export_report],
        api_visibility="private",
    )

    @user_errors
    def on_upload(pw: str, files: list[str] | None, progress: gr.Progress = gr.Progress()) -> str:
        return actions.add_images(runtime, pw, files, progress_adapter(progress))

    refresh_after(
        upload_btn.click(on_upload, [session_password, upload_files], [upload_report], api_visibility="private")
    )

    # -- first load --------------------------------------------------------------------------
    def on_load() -> tuple[Any, ...]:
        try:
            choices = actions.filter_choices(runtime)
            grid_values = _grid_values(actions.load_page(runtime, curation.Query()), actions.counts_markdown(runtime))
        except CarmatchError as exc:
            log.warning("Dataset tab could not load: %s", exc)
            choices = {key: [ANY] for key in FILTER_ATTRIBUTES}
            grid_values = ([], [], gr.update(choices=[], value=[]), f"⚠️ {exc}", 1, "")
        return (*grid_values, *[gr.update(choices=choices[key]) for key in FILTER_ATTRIBUTES])

    demo.load(on_load, None, [*grid_outputs, *attr_f.values()], api_visibility="private")
