"""The Dataset tab's files panels: import captions, export pairs, add images. Layout and wiring only.

The logic is in :mod:`carmatch.ui.dataset_files_actions`. Every button re-checks the admin
password held in the tab's session state.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from carmatch.catalog import ATTRIBUTE_COLUMNS
from carmatch.errors import CarmatchError
from carmatch.runtime import Runtime
from carmatch.ui import dataset_files_actions as actions
from carmatch.ui.common import progress_adapter, user_errors
from carmatch.ui.phrasing import FIELD_LABELS, for_browser

IMPORT_HELP = (
    "Columns: `file` (path as ingested, absolute or relative to the ingested folder) or `id`, then "
    f"`caption`, optional {', '.join(f'`{key}`' for key in ATTRIBUTE_COLUMNS)}. Imported captions start "
    "unreviewed and never replace a caption a person wrote. A row that changes only attributes keeps the "
    "review state; the preview lists approved captions a new caption would send back to unreviewed."
)


def build_import(runtime: Runtime, session_password: gr.State) -> Any:
    """Lay out and wire the import panel; returns the apply event (captions changed)."""
    plan = gr.State([])
    gr.Markdown(IMPORT_HELP)
    import_file = gr.File(
        label="Captions file", file_types=[".csv", ".jsonl", ".json"], type="filepath", elem_id="import-file"
    )
    reset_reviewed = gr.Checkbox(
        False,
        label="Also replace approved and rejected captions (they return to unreviewed)",
        elem_id="import-reset-reviewed",
    )
    preview_btn = gr.Button("Preview changes", elem_id="import-preview-button")
    preview_text = gr.Textbox(label="Preview", lines=6, interactive=False, elem_id="import-preview")
    preview_table = gr.Dataframe(
        headers=["line", "image", "current caption", "new caption", "attributes"], interactive=False, wrap=True
    )
    apply_btn = gr.Button("Apply import", variant="primary", elem_id="import-apply")
    import_report = gr.Textbox(label="Import report", lines=3, interactive=False, elem_id="import-report")

    @user_errors
    def on_preview(pw: str, file: str | None, reset: bool) -> tuple[str, list[list[Any]], list[dict[str, Any]]]:
        return actions.import_preview(runtime, pw, file, bool(reset))

    @user_errors
    def on_apply(
        pw: str, planned: list[dict[str, Any]], progress: gr.Progress = gr.Progress()
    ) -> tuple[str, list[Any]]:
        return actions.import_apply(runtime, pw, planned, progress_adapter(progress)), []

    preview_btn.click(
        on_preview,
        [session_password, import_file, reset_reviewed],
        [preview_text, preview_table, plan],
        api_visibility="private",
    )
    return apply_btn.click(on_apply, [session_password, plan], [import_report, plan], api_visibility="private")


def build_export(runtime: Runtime, session_password: gr.State) -> None:
    """Lay out and wire the export panel (files to download, and the Titan upload command)."""
    with gr.Row():
        fmt = gr.Radio(["csv", "jsonl", "titan"], value="jsonl", label="Format")
        include_unreviewed = gr.Checkbox(label="include unreviewed (never rejected)")
        s3_prefix = gr.Textbox(label=FIELD_LABELS["s3_prefix"], placeholder="s3://my-bucket/carmatch/titan/")
    export_btn = gr.Button("Export", elem_id="export-button")
    export_files = gr.File(label="Download", file_count="multiple", interactive=False, elem_id="export-files")
    export_report = gr.Textbox(label="Export report", lines=4, interactive=False, elem_id="export-report")

    def on_export(
        pw: str, chosen: str, unreviewed: bool, prefix: str, progress: gr.Progress = gr.Progress()
    ) -> Iterator[tuple[list[str] | None, str]]:
        """Export; a refusal replaces the previous files and report with the reason.

        A generator so the files go as soon as they are served: Gradio copies what an event returns
        into its cache (which ``delete_cache`` empties) before it resumes the generator.
        """
        try:
            files, text = actions.export(runtime, pw, chosen, unreviewed, prefix, progress_adapter(progress))
        except CarmatchError as exc:
            yield None, f"❌ {for_browser(exc)}"
            return
        try:
            yield files, text
        finally:  # after Gradio's copy, or when the visitor left first: nothing stays behind
            actions.remove_downloads(files)

    export_btn.click(
        on_export,
        [session_password, fmt, include_unreviewed, s3_prefix],
        [export_files, export_report],
        api_visibility="private",
    )


def build_upload(runtime: Runtime, session_password: gr.State) -> Any:
    """Lay out and wire the add-images panel; returns the upload event (collection changed)."""
    upload_files = gr.File(
        label="Images or .zip of images", file_count="multiple", file_types=["image", ".zip"], type="filepath"
    )
    cars = gr.Checkbox(
        runtime.settings.detector.strip().lower() not in ("", "none"),  # on when CARMATCH_DETECTOR is set
        label="Traffic frames: each car the detector finds becomes its own search hit (car-less frames stay whole)",
        elem_id="upload-cars",
    )
    upload_btn = gr.Button("Add to the collection", variant="primary")
    upload_report = gr.Textbox(label="Upload report", lines=4, interactive=False)

    @user_errors
    def on_upload(pw: str, files: list[str] | None, frames: bool, progress: gr.Progress = gr.Progress()) -> str:
        return actions.add_images(runtime, pw, files, progress_adapter(progress), cars=bool(frames))

    return upload_btn.click(
        on_upload, [session_password, upload_files, cars], [upload_report], api_visibility="private"
    )
