"""The Training tab (admin): fine-tune CLIP on the curated pairs and activate the result.

Layout and wiring only; the logic is in :mod:`carmatch.ui.training_actions`. Training runs in a
background thread, so the Search tab keeps answering other visitors while it runs.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import gradio as gr

from carmatch.access import is_admin
from carmatch.errors import CarmatchError
from carmatch.runtime import Runtime
from carmatch.ui import training_actions as actions
from carmatch.ui.common import progress_adapter, unlock_row, user_errors
from carmatch.ui.phrasing import FIELD_LABELS, as_text, for_browser

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
LOCKED_VIEW = "🔒 Unlock training to see the collection's training pairs, runs, logs and models."
FOLLOW_LOG = (
    "() => { const box = document.querySelector('#train-log textarea'); if (box) box.scrollTop = box.scrollHeight; }"
)
HYPERPARAMETERS = ("epochs", "batch_size", "lr", "unfreeze", "accum_steps")  # actions.start's order


def _hyperparameter_boxes(defaults: dict[str, Any]) -> list[gr.Number]:
    """One number box per hyperparameter, in ``HYPERPARAMETERS`` order, labelled as errors name them."""
    with gr.Row():
        boxes = {
            "epochs": gr.Number(defaults["epochs"], label=FIELD_LABELS["epochs"], precision=0, minimum=1),
            "batch_size": gr.Number(defaults["batch_size"], label=FIELD_LABELS["batch_size"], precision=0, minimum=2),
            "accum_steps": gr.Number(
                defaults["accum_steps"], label=FIELD_LABELS["accum_steps"], precision=0, minimum=1
            ),
            "lr": gr.Number(defaults["lr"], label=FIELD_LABELS["lr"]),
            "unfreeze": gr.Number(defaults["unfreeze"], label=f"{FIELD_LABELS['unfreeze']} (-1 = all)", precision=0),
        }
    return [boxes[name] for name in HYPERPARAMETERS]


def _recipe_inputs(defaults: dict[str, Any]) -> list[Any]:
    """What each training step pairs an image with (caption views) and its hard negatives: actions.start's order."""
    with gr.Row():
        views = gr.Dropdown(
            actions.CAPTION_VIEW_CHOICES,
            value=defaults["caption_views"],
            label=FIELD_LABELS["caption_views"],
            info="full captions, short descriptions from approved attributes, or a typed mix: full:1,attributes:2",
            allow_custom_value=True,
            scale=2,
        )
        hard = gr.Number(
            defaults["hard_negatives"],
            label=FIELD_LABELS["hard_negatives"],
            info="images differing in one attribute put beside each image in its batch (0 = off)",
            precision=0,
            minimum=0,
        )
    return [views, hard]


def _progress_views() -> list[Any]:
    """Status line, loss and recall curves, before/after table and log: what ``actions.poll`` fills."""
    status = gr.Markdown(actions.NO_RUN_YET, elem_id="train-status")
    with gr.Row():
        loss_plot = gr.LinePlot(x="step", y="loss", title="training loss", height=260, elem_id="train-loss")
        recall_plot = gr.LinePlot(
            x="epoch",
            y="value",
            color="metric",
            title="validation text→image recall",
            height=260,
            elem_id="train-recall",
        )
    before_after = gr.Dataframe(label="test split: before → after", interactive=False, visible=False)
    log_box = gr.Textbox(label="log", lines=8, max_lines=8, interactive=False, autoscroll=True, elem_id="train-log")
    return [status, loss_plot, recall_plot, before_after, log_box]


def _model_views() -> dict[str, Any]:
    """The registered models, the one to activate (showing the active one), confirmation, buttons and message."""
    gr.Markdown("### Models")
    models = gr.Dataframe(label="registered models", interactive=False)
    with gr.Row():
        pick = gr.Dropdown(["base"], value="base", label="model (shows the active one)", scale=2, elem_id="model-pick")
        activate = gr.Button("Activate this model…", variant="primary", scale=2, elem_id="model-activate")
        cancel = gr.Button("Cancel rebuild", scale=1)
    with gr.Row(visible=False) as confirm_row:
        plan = gr.Markdown(elem_id="activation-plan")
        confirm = gr.Button("Confirm: activate and re-embed", variant="stop", elem_id="activation-confirm")
        keep = gr.Button("Keep the current model", elem_id="activation-keep")
    return {
        "models": models,
        "pick": pick,
        "activate": activate,
        "cancel": cancel,
        "confirm_row": confirm_row,
        "plan": plan,
        "confirm": confirm,
        "keep": keep,
        "message": gr.Markdown(elem_id="activation-message"),
    }


def build(demo: gr.Blocks, runtime: Runtime, session_password: gr.State | None = None) -> None:
    """Lay out the Training tab inside the current gr.Blocks context and wire its events (login shared if given)."""
    state = actions.TrainingState()
    session_password = unlock_row(runtime, "Unlock training", "train", session_password)
    summary = gr.Markdown("Loading…")
    defaults = actions.defaults(runtime)
    hyperparameters = [*_hyperparameter_boxes(defaults), *_recipe_inputs(defaults)]
    with gr.Row(equal_height=True):
        start_btn = gr.Button("Start training", variant="primary", elem_id="train-start")
        cancel_btn = gr.Button("Cancel", variant="stop")
        progress_bar = gr.HTML(actions.progress_bar(None), elem_id="train-progress", min_width=260)
    with gr.Row(equal_height=True):
        resume_run = gr.Dropdown([], label="resume an unfinished run", allow_custom_value=False, scale=2)
        resume_btn = gr.Button("Resume")
    draw_outputs = [*_progress_views(), progress_bar]
    status = draw_outputs[0]

    model_ui = _model_views()
    model_pick = model_ui["pick"]
    refresh_outputs = [summary, model_ui["models"], model_pick, resume_run, start_btn]
    refresh = _wire_refresh(demo, runtime, state, draw_outputs, refresh_outputs, session_password)

    @_said_in_status
    def on_start(
        pw: str,
        epochs: float | None,
        batch: float | None,
        lr_: float | None,
        unfreeze: float | None,
        accum: float | None,
        views: str | None,
        hard: float | None,
    ) -> str:
        return actions.start(runtime, state, pw, epochs, batch, lr_, unfreeze, accum, views or "", hard)

    @_said_in_status
    def on_resume(pw: str, run_id: str | None) -> str:
        return actions.resume(runtime, state, pw, run_id)

    @user_errors
    def on_cancel(pw: str) -> str:
        return actions.cancel(runtime, state, pw)

    start_btn.click(on_start, [session_password, *hyperparameters], [status], api_visibility="private").then(
        refresh, [session_password], refresh_outputs, api_visibility="private"
    )
    resume_btn.click(on_resume, [session_password, resume_run], [status], api_visibility="private")
    cancel_btn.click(on_cancel, [session_password], [status], api_visibility="private")
    _wire_activation(runtime, state, session_password, model_ui, refresh, refresh_outputs)


def _said_in_status(fn: Any) -> Any:
    """Decorate a start/resume handler: a refusal stays in the status line (not a toast that vanishes)."""

    @functools.wraps(fn)
    def wrapper(*args: Any) -> str:
        try:
            return str(fn(*args))
        except CarmatchError as exc:
            log.info("%s refused: %s", fn.__name__, exc)
            return f"❌ **Not started:** {as_text(for_browser(exc))}"

    return wrapper


def _wire_activation(
    runtime: Runtime,
    state: actions.TrainingState,
    session_password: gr.State,
    ui: dict[str, Any],
    refresh: Any,
    refresh_outputs: list[Any],
) -> None:
    """Activate asks first (what will be re-embedded); Confirm activates and rebuilds; Keep changes nothing."""

    def hidden() -> Any:
        return gr.update(visible=False)  # a fresh update each time: Gradio consumes one when it applies it

    def on_activate(pw: str, run_id: str) -> tuple[Any, ...]:
        try:
            plan = actions.activation_plan(runtime, pw, run_id)
        except CarmatchError as exc:
            return hidden(), "", f"❌ {as_text(for_browser(exc))}"
        if not plan:
            return hidden(), "", f"**{run_id}** is already active and its index is current."
        return gr.update(visible=True), plan, ""

    @user_errors
    def on_confirm(pw: str, run_id: str, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        return hidden(), actions.activate(runtime, state, pw, run_id, progress_adapter(progress))

    @user_errors
    def on_cancel_activate(pw: str) -> str:
        return actions.cancel_activation(runtime, state, pw)

    def on_keep() -> tuple[Any, ...]:
        kept = actions.active_choice(runtime)
        return hidden(), gr.update(value=kept), f"Nothing changed: **{kept}** stays active."

    private = {"api_visibility": "private"}
    shown = [ui["confirm_row"], ui["plan"], ui["message"]]
    ui["activate"].click(on_activate, [session_password, ui["pick"]], shown, **private)
    ui["confirm"].click(
        on_confirm, [session_password, ui["pick"]], [ui["confirm_row"], ui["message"]], concurrency_limit=1, **private
    ).then(refresh, [session_password], refresh_outputs, **private)
    ui["keep"].click(on_keep, None, [ui["confirm_row"], ui["pick"], ui["message"]], **private)
    ui["cancel"].click(on_cancel_activate, [session_password], [ui["message"]], **private)


def _wire_refresh(
    demo: gr.Blocks,
    runtime: Runtime,
    state: actions.TrainingState,
    draw_outputs: list[Any],
    refresh_outputs: list[Any],
    session_password: gr.State,
) -> Any:
    """Poll the running job on a timer, re-read summary and models when it changes; returns the refresh handler.

    Runs, models, logs and paths are admin matters: a locked session's ticks show only LOCKED_VIEW.
    """

    def refresh(pw: str | None) -> tuple[Any, ...]:
        if not is_admin(runtime.settings, pw):
            return LOCKED_VIEW, None, gr.update(choices=["base"]), gr.update(choices=[]), gr.update()
        try:
            counts = actions.tab_summary(runtime)  # the pairs are read once for the text and for Start
            text = actions.summary_markdown(runtime, counts)
            table = actions.models_table(runtime)
            choices = actions.model_choices(runtime)
            resumable = actions.resumable_runs(runtime)
            startable = actions.can_start(runtime, counts)
            active = actions.active_choice(runtime)
        except CarmatchError as exc:
            return f"⚠️ {as_text(for_browser(exc))}", None, gr.update(), gr.update(), gr.update()
        picked = gr.update(choices=choices, value=active if active in choices else "base")
        return text, table, picked, gr.update(choices=resumable), gr.update(interactive=startable)

    def draw(pw: str | None) -> tuple[Any, ...]:
        if not is_admin(runtime.settings, pw):
            return LOCKED_VIEW, None, None, gr.update(value=None, visible=False), "", actions.progress_bar(None)
        view = actions.poll(state)
        table = gr.update(value=view["before_after"], visible=view["before_after"] is not None)
        return view["status"], view["loss"], view["recall"], table, view["log"], view["progress"]

    seen = gr.State(None)  # per browser session: (job status, newest caption-history row) last drawn

    def refresh_when_job_changes(pw: str | None, last: Any = None) -> tuple[Any, ...]:
        """Re-read summary and models only when the job's status or the collection's review work changed."""
        job = (state.job.run_id, state.job.status) if state.job is not None else None
        current = [job, runtime.catalog.newest_history_id()]  # approvals, edits and imports add history rows
        if current == last or not is_admin(runtime.settings, pw):
            return (*[gr.update() for _ in refresh_outputs], last)
        return (*refresh(pw), current)

    timer = gr.Timer(POLL_SECONDS)
    timer.tick(draw, [session_password], draw_outputs, api_visibility="private", show_progress="hidden")
    draw_outputs[-1].change(None, js=FOLLOW_LOG)  # the log follows its newest line
    timer.tick(
        refresh_when_job_changes,
        [session_password, seen],
        [*refresh_outputs, seen],
        api_visibility="private",
        show_progress="hidden",
    )
    demo.load(refresh, [session_password], refresh_outputs, api_visibility="private")
    session_password.change(refresh, [session_password], refresh_outputs, api_visibility="private")
    return refresh
