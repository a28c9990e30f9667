"""The Dataset tab's "Claude batch jobs" panel: layout and wiring only.

The logic is in :mod:`carmatch.ui.caption_jobs_actions`. Every button re-checks the admin
password held in the tab's session state; unlocking fills the boxes from the settings and
shows the jobs table.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from carmatch.runtime import Runtime
from carmatch.ui import caption_jobs_actions as actions
from carmatch.ui.common import progress_adapter, user_errors

INTRO = (
    "Caption thousands of images with Bedrock batch inference (about half the price of live captioning, "
    "results within a day). **Submit** sends the images `.venv/bin/carmatch caption batch submit` would pick: "
    "every image without a caption from a person or from Claude with the current prompt. Input and output "
    "go to `s3://BUCKET/PREFIX/JOB-NAME/`; the service role lets Bedrock read and write that bucket. "
    "Jobs keep running when the app stops: come back, **Refresh status**, then **Collect finished jobs**."
)


def build(runtime: Runtime, session_password: gr.State) -> Any:
    """Lay out the panel in the current context and wire it; returns the collect event (captions changed)."""
    gr.Markdown(INTRO)
    with gr.Row():
        bucket = gr.Textbox(label="S3 bucket", placeholder="my-bucket", max_length=200, elem_id="batch-bucket")
        prefix = gr.Textbox(label="Prefix (folder)", placeholder="carmatch-batch", max_length=300)
        role_arn = gr.Textbox(
            label="Batch service role ARN",
            placeholder="arn:aws:iam::123456789012:role/carmatch-batch",
            max_length=300,
            elem_id="batch-role-arn",
        )
    ready = gr.Markdown(actions.readiness("", ""), elem_id="batch-readiness")
    _aws_check(runtime, session_password, bucket, role_arn)
    with gr.Row():
        submit_btn = gr.Button("Submit batch job", variant="primary", elem_id="batch-submit")
        refresh_btn = gr.Button("Refresh status", elem_id="batch-refresh")
        collect_btn = gr.Button("Collect finished jobs", elem_id="batch-collect")
    report = gr.Textbox(label="Batch report", lines=4, interactive=False, elem_id="batch-report")
    table = gr.Dataframe(headers=actions.JOBS_HEADERS, label="Batch jobs (newest first)", interactive=False, wrap=True)

    @user_errors
    def on_submit(
        pw: str, where: str, folder: str, role: str, progress: gr.Progress = gr.Progress()
    ) -> tuple[str, list[list[Any]]]:
        return actions.submit(runtime, pw, where, folder, role, progress_adapter(progress))

    @user_errors
    def on_refresh(pw: str) -> tuple[str, list[list[Any]]]:
        return actions.refresh(runtime, pw)

    @user_errors
    def on_collect(pw: str, progress: gr.Progress = gr.Progress()) -> tuple[str, list[list[Any]]]:
        return actions.collect(runtime, pw, progress_adapter(progress))

    def on_unlock(pw: str, where: str, folder: str, role: str) -> tuple[Any, ...]:
        return actions.on_unlock(runtime, pw, where, folder, role)

    session_password.change(
        on_unlock,
        [session_password, bucket, prefix, role_arn],
        [bucket, prefix, role_arn, table],
        api_visibility="private",
    )

    def on_fields(where: str, role: str) -> str:
        return actions.readiness(where, role)

    for box in (bucket, role_arn):
        box.change(on_fields, [bucket, role_arn], [ready], api_visibility="private", show_progress="hidden")
    submit_btn.click(on_submit, [session_password, bucket, prefix, role_arn], [report, table], api_visibility="private")
    refresh_btn.click(on_refresh, [session_password], [report, table], api_visibility="private")
    return collect_btn.click(on_collect, [session_password], [report, table], api_visibility="private")


def _aws_check(runtime: Runtime, session_password: gr.State, bucket: Any, role_arn: Any) -> None:
    """A folded "Check AWS" row: ``aws check``'s lines for the bucket and role in the boxes."""
    with gr.Accordion("Check the AWS set-up (reads only, costs nothing)", open=False):
        check_btn = gr.Button("Check AWS", elem_id="batch-aws-check")
        checked = gr.Markdown(elem_id="batch-aws-check-result")

    @user_errors
    def on_check(pw: str, where: str, role: str) -> str:
        return actions.aws_check(runtime, pw, where, role)

    check_btn.click(on_check, [session_password, bucket, role_arn], [checked], api_visibility="private")
