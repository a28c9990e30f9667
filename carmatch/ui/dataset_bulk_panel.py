"""The Dataset tab's bulk panel: scope, action, options, run, the report and one-step undo.

Layout and wiring only; the logic is in :mod:`carmatch.ui.dataset_bulk_actions`. After each run the
confirmation and the scope go back to their safe defaults, so the next action asks again.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from carmatch.errors import CarmatchError
from carmatch.runtime import Runtime
from carmatch.ui import dataset_actions as actions
from carmatch.ui import dataset_bulk_actions as bulk_actions
from carmatch.ui.common import progress_adapter
from carmatch.ui.phrasing import for_browser


def build() -> dict[str, Any]:
    """Selection on this page, scope, action, delete options, run and undo, the report."""
    # holds the ids picked on the thumbnails (select mode); shown as 'picked' badges on the grid, not as a list
    selected = gr.CheckboxGroup([], label="Select images on this page", elem_id="dataset-selected", visible=False)
    with gr.Row():
        select_all = gr.Button("Select page", size="sm")
        select_none = gr.Button("Clear", size="sm")
    scope = gr.Radio(
        [bulk_actions.SCOPE_SELECTED, bulk_actions.SCOPE_MATCHING],
        value=bulk_actions.SCOPE_SELECTED,
        label="Apply to",
        elem_id="bulk-scope",
    )
    action = gr.Radio(list(bulk_actions.BULK_ACTIONS), value="approve", label="Action", elem_id="bulk-action")
    with gr.Row():
        delete_files = gr.Checkbox(label="also delete uploaded files (files elsewhere are never deleted; no undo)")
        overturn = gr.Checkbox(label="also approve rejected images")
        confirm = gr.Checkbox(
            label="confirm (needed to delete, or to act on everything matching)", elem_id="bulk-confirm"
        )
    with gr.Row():
        run = gr.Button("Run bulk action", variant="stop", elem_id="dataset-bulk-run", interactive=False)
        undo = gr.Button("Undo last bulk action", elem_id="dataset-bulk-undo", interactive=False)
    last = gr.Markdown(elem_id="bulk-last")
    report = gr.Textbox(label="Bulk report", lines=4, interactive=False, elem_id="bulk-report")
    return {
        "selected": selected,
        "select_all": select_all,
        "select_none": select_none,
        "scope": scope,
        "confirm": confirm,
        "inputs": [action, scope, selected, delete_files, confirm, overturn],
        "run": run,
        "undo": undo,
        "last": last,
        "report": report,
    }


def wire(
    demo: gr.Blocks,
    runtime: Runtime,
    session_password: gr.State,
    filters: list[Any],
    bulk: dict[str, Any],
    page_versions: gr.State,
    refresh_after: Any,
) -> None:
    """Run the chosen bulk action on the picked images or on everything matching the filters; undo the last."""

    def on_bulk(
        pw: str,
        what: str,
        where: str,
        ids: list[str],
        remove_files: bool,
        confirmed: bool,
        overturn: bool,
        versions: dict[str, int],
        *values: Any,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[Any, ...]:
        query, report = actions.query_from_inputs(values), progress_adapter(progress)
        try:
            text = bulk_actions.bulk(
                runtime,
                pw,
                what,
                where,
                ids,
                query,
                remove_files,
                confirmed,
                report,
                overturn_rejected=overturn,
                seen_versions=versions,
            )
        except CarmatchError as exc:  # shown in the report box (which stays readable), nothing changed
            return f"❌ {for_browser(exc)}", gr.update(), gr.update(), gr.update()
        # fresh updates each time: Gradio consumes an update dict when it applies it
        reset = (gr.update(value=False), gr.update(value=bulk_actions.SCOPE_SELECTED))
        return text, *reset, bulk_actions.last_action_note(runtime)

    def on_undo(pw: str, progress: gr.Progress = gr.Progress()) -> tuple[str, str]:
        try:
            text = bulk_actions.undo_last(runtime, pw, progress_adapter(progress))
        except CarmatchError as exc:
            text = f"❌ {for_browser(exc)}"
        return text, bulk_actions.last_action_note(runtime)

    inputs = [session_password, *bulk["inputs"], page_versions, *filters]
    outputs = [bulk["report"], bulk["confirm"], bulk["scope"], bulk["last"]]
    refresh_after(bulk["run"].click(on_bulk, inputs, outputs, api_visibility="private"))
    undone = bulk["undo"].click(on_undo, [session_password], [bulk["report"], bulk["last"]], api_visibility="private")
    refresh_after(undone)
    demo.load(lambda: bulk_actions.last_action_note(runtime), None, [bulk["last"]], api_visibility="private")
