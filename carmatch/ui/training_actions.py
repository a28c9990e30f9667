"""The Training tab's logic as plain functions (tests call these without a browser).

One TrainingJob runs at a time per app; the tab polls its snapshot on a timer. Every action that
starts, stops or activates anything re-checks the admin password held in the session.
"""

from __future__ import annotations

import html
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from carmatch.access import check_admin
from carmatch.errors import BusyError, InvalidInputError, Problem
from carmatch.progress import Progress
from carmatch.runtime import Runtime
from carmatch.training import registry
from carmatch.training import runs as training_jobs
from carmatch.training.config import DEFAULT_HARD_NEGATIVES, TrainConfig
from carmatch.training.data import MIN_EVAL_PAIRS, MIN_TRAIN_PAIRS
from carmatch.ui.phrasing import phrased

log = logging.getLogger(__name__)

RECALL_KEYS = {"t2i_r1": "R@1", "t2i_r5": "R@5", "t2i_r10": "R@10", "attr_p5": "partial description P@5"}
NO_RUN_YET = (
    "No run yet in this app session: press **Start training** (or choose an unfinished run and press "
    "**Resume**). Its loss curve, validation recall and log appear below; the before/after table when it finishes."
)
RESUME_IN_TAB = "Cancelled; its checkpoint is kept. Choose it in 'resume an unfinished run' and press **Resume**."
CLI_RESUME_HINT = "resume it with: .venv/bin/carmatch train --resume"  # the library's words for the CLI


@dataclass
class TrainingState:
    """What the app remembers between polls: the current job and a running activation's cancel flag."""

    job: training_jobs.TrainingJob | None = None
    activation_cancel: threading.Event | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def split_warning(counts: dict[str, Any]) -> str:
    """What keeps Start from training on these pairs ('' when every split is big enough)."""
    short = [
        f"{name} has {counts.get(name, 0)} (needs {least})"
        for name, least in (("train", MIN_TRAIN_PAIRS), ("validation", MIN_EVAL_PAIRS), ("test", MIN_EVAL_PAIRS))
        if counts.get(name, 0) < least
    ]
    if not short:
        return ""
    return (
        f"⚠️ **Too few pairs to start:** {'; '.join(short)}. Approve more captioned images in the Dataset tab; "
        "these counts follow your approvals."
    )


def tab_summary(runtime: Runtime) -> dict[str, Any]:
    """The counts the tab's summary and Start read (pairs by split, device), computed once per redraw."""
    return training_jobs.summary_for_tab(runtime)


def can_start(runtime: Runtime, summary: dict[str, Any] | None = None) -> bool:
    """Whether the collection's pairs fill every split enough to train and evaluate."""
    return not split_warning(summary or tab_summary(runtime))


def summary_markdown(runtime: Runtime, summary: dict[str, Any] | None = None) -> str:
    """Dataset pairs by split, approved count, and the device with what to expect."""
    s = summary or tab_summary(runtime)
    source = {"approved": "approved pairs", "unreviewed": "unreviewed pairs: nothing is approved yet"}.get(
        s["source"], s["source"]
    )
    lines = [
        f"**{s['pairs']} training pairs** ({source}): train {s.get('train', 0)} · validation "
        f"{s.get('validation', 0)} · test {s.get('test', 0)} · approved {s['approved']}",
        f"**Device:** {s['message']}",
    ]
    if s["pairs"] == 0:
        lines.append("No captioned images yet: caption and approve images in the Dataset tab first.")
    elif warning := split_warning(s):
        lines.append(warning)
    active = runtime.active_model()
    lines.append(f"**Active model:** {active.run_id or 'base'} (`{active.spec.name}`)")
    return "\n\n".join(lines)


# The caption-view mixes offered in the tab (label, value); any other mix may be typed (e.g. full:1,attributes:2).
CAPTION_VIEW_CHOICES = [
    ("full caption + attribute descriptions (1:1)", "full,attributes"),
    ("mostly full caption (3:1)", "full:3,attributes:1"),
    ("full caption only", "full"),
    ("attribute descriptions only", "attributes"),
]


def defaults(runtime: Runtime) -> dict[str, Any]:
    """Hyperparameter defaults suited to the device found, with the run config's caption views and hard negatives."""
    chosen = dict(training_jobs.device_summary(runtime.settings.device)["defaults"])
    recipe = TrainConfig(model=runtime.settings.model, pretrained=runtime.settings.pretrained)
    return {**chosen, "caption_views": recipe.caption_views, "hard_negatives": recipe.hard_negatives}


def _numbers(**boxes: float | None) -> dict[str, float]:
    """The hyperparameter boxes as given; a cleared box (None) is refused by its label."""
    missing = [Problem(name) for name, value in boxes.items() if value is None]
    if missing:
        raise InvalidInputError("Fill in every hyperparameter before starting", problems=missing)
    return {name: float(value) for name, value in boxes.items() if value is not None}


@phrased
def start(
    runtime: Runtime,
    state: TrainingState,
    session_password: str | None,
    epochs: float | None,
    batch_size: float | None,
    lr: float | None,
    unfreeze: float | None,
    accum_steps: float | None,
    caption_views: str | None = None,  # None: the run config's default mix
    hard_negatives: float | None = DEFAULT_HARD_NEGATIVES,
    resume: str | None = None,
) -> str:
    """Start (or resume) a run in the background; returns a status line. The library checks the values."""
    check_admin(runtime.settings, session_password)
    with state.lock:
        if state.job is not None and state.job.running:
            raise BusyError(f"Run {state.job.run_id} is still training; cancel it or wait for it to finish.")
        if resume:
            job = training_jobs.start_training(runtime, resume=resume, earlier=state.job)
        else:
            given = _numbers(
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                unfreeze=unfreeze,
                accum_steps=accum_steps,
                hard_negatives=hard_negatives,
            )
            job = training_jobs.start_training(
                runtime,
                epochs=int(given["epochs"]),
                batch_size=int(given["batch_size"]),
                lr=given["lr"],
                unfreeze=int(given["unfreeze"]),
                accum_steps=int(given["accum_steps"]),
                hard_negatives=_whole(given["hard_negatives"]),
                caption_views=caption_views,  # None: the default; a typed mix is checked by the run config
            )
        state.job = job
    return f"Run **{job.run_id}** {'resumed' if resume else 'started'}."


def _whole(value: float) -> int | float:
    """A whole number as an int; anything else unchanged, for the run config to refuse by name."""
    return int(value) if float(value).is_integer() else value


def resume(runtime: Runtime, state: TrainingState, session_password: str | None, run_id: str | None) -> str:
    """Resume an unfinished run where it stopped; returns a status line."""
    check_admin(runtime.settings, session_password)
    if not run_id:
        raise InvalidInputError("Choose an unfinished run to resume.")
    return start(runtime, state, session_password, None, None, None, None, None, resume=run_id)


def cancel(runtime: Runtime, state: TrainingState, session_password: str | None) -> str:
    """Ask the running job to stop after its current step (it keeps a resumable checkpoint)."""
    check_admin(runtime.settings, session_password)
    if state.job is None or not state.job.running:
        return "No training run is in progress."
    state.job.cancel()
    return (
        f"Cancelling run **{state.job.run_id}** after the current step. To continue later, choose it in "
        "'resume an unfinished run' and press **Resume**."
    )


def poll(state: TrainingState) -> dict[str, Any]:
    """Everything to draw for the current job: status line, curves, log, before/after."""
    job = state.job
    if job is None:
        return {
            "status": NO_RUN_YET,
            "loss": None,
            "recall": None,
            "log": "",
            "before_after": None,
            "progress": progress_bar(None),
        }
    snap = job.snapshot()
    steps = snap["loss_curve"]
    loss = pd.DataFrame(steps, columns=["step", "epoch", "loss", "lr"])[["step", "loss"]] if steps else None
    rows = [
        {"epoch": row["epoch"], "value": row.get(key), "metric": label}
        for row in snap["val_curve"]
        for key, label in RECALL_KEYS.items()
        if row.get(key) is not None
    ]
    # None, not an empty frame, until there is data: a plot first drawn empty keeps a broken legend
    recall = pd.DataFrame(rows, columns=["epoch", "value", "metric"]) if rows else None
    status = f"Run **{snap['run_id']}**: {snap['status']}"
    if snap["total_steps"]:
        status += f" · step {snap['step']}/{snap['total_steps']} · epoch {snap['epoch']}"
    if snap["eta_s"] is not None and snap["status"] == "running":
        status += f" · ETA {format_seconds(snap['eta_s'])}"
    if snap["status"] == "cancelled":
        status += f"\n\n{RESUME_IN_TAB}"
    elif snap["error"]:
        status += f"\n\n⚠️ {snap['error']}"
    before_after = None
    if snap["before_after"]:
        header, *body = snap["before_after"]
        before_after = pd.DataFrame(body, columns=header)
    log_text = "\n".join(line.split(CLI_RESUME_HINT)[0].rstrip("; ") for line in snap["log_tail"])
    bar = progress_bar(snap)
    return {
        "status": status,
        "loss": loss,
        "recall": recall,
        "log": log_text,
        "before_after": before_after,
        "progress": bar,
    }


def progress_bar(snap: dict[str, Any] | None) -> str:
    """The run's progress as an accessible bar with steps and ETA, for beside the Start button."""
    if not snap or not snap.get("total_steps"):
        return '<div class="cm-train-progress cm-idle">No run in progress</div>'
    step, total = int(snap["step"]), int(snap["total_steps"])
    share = max(0.0, min(1.0, step / total))
    status = str(snap["status"])
    words = f"{status} · step {step} of {total} ({share:.0%})"
    if snap.get("eta_s") is not None and status == "running":
        words += f" · ETA {format_seconds(float(snap['eta_s']))}"
    return (
        f'<div class="cm-train-progress cm-{html.escape(status)}" role="progressbar" aria-valuemin="0" '
        f'aria-valuemax="{total}" aria-valuenow="{step}" aria-label="training progress">'
        f'<div class="cm-bar"><div class="cm-fill" style="width: {share * 100:.1f}%"></div></div>'
        f'<span class="cm-words">{html.escape(words)}</span></div>'
    )


def format_seconds(seconds: float) -> str:
    """Seconds as a short h/m/s string."""
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s"


def models_table(runtime: Runtime) -> pd.DataFrame:
    """Registered models (and base) with status, key metrics and which one is active."""
    rows = registry.model_table(runtime)
    columns = ["id", "created_at", "status", "active", "test R@5 before", "test R@5 after", "checkpoint"]
    out = []
    for row in rows:
        metrics = row.get("metrics") or {}
        before = (metrics.get("test_before") or {}).get("t2i_r5")
        after = (metrics.get("test_after") or {}).get("t2i_r5")
        out.append(
            [
                row.get("id"),
                row.get("created_at"),
                row.get("status"),
                "✔" if row.get("active") else "",
                None if before is None else round(float(before), 3),
                None if after is None else round(float(after), 3),
                row.get("checkpoint"),
            ]
        )
    return pd.DataFrame(out, columns=columns)


def model_choices(runtime: Runtime) -> list[str]:
    """Ids that can be activated: base plus every finished run."""
    return ["base", *[r.id for r in registry.list_models(runtime.catalog) if r.status == "ready"]]


def active_choice(runtime: Runtime) -> str:
    """The model picker's value: the run answering searches now (``base`` for the base model)."""
    return runtime.active_model().run_id or "base"


def activation_plan(runtime: Runtime, session_password: str | None, run_id: str | None) -> str:
    """What activating ``run_id`` will do, for the person to confirm ('' when it is active and indexed)."""
    check_admin(runtime.settings, session_password)
    if not run_id:
        raise InvalidInputError("Choose a model to activate.")
    registry.spec_for(runtime, run_id)  # an unknown or unusable run is refused before anything is asked
    images = runtime.catalog.count()
    if run_id == active_choice(runtime) and runtime.store.exists():
        return ""
    return (
        f"Activating **{run_id}** re-embeds up to **{images} images** with its model (images it embedded before "
        f"come from the cache) and then swaps the index; searches keep using **{active_choice(runtime)}** until "
        "the swap. Confirm to go ahead."
    )


def resumable_runs(runtime: Runtime) -> list[str]:
    """Runs that stopped before finishing (cancelled, failed, or interrupted)."""
    return [r.id for r in registry.list_models(runtime.catalog) if r.status in ("cancelled", "failed", "running")]


@phrased
def activate(
    runtime: Runtime,
    state: TrainingState,
    session_password: str | None,
    run_id: str | None,
    progress: Progress,
) -> str:
    """Activate a model and rebuild the index beside the live one; search keeps serving meanwhile."""
    check_admin(runtime.settings, session_password)
    if not run_id:
        raise InvalidInputError("Choose a model to activate.")
    cancel_event = threading.Event()
    state.activation_cancel = cancel_event
    try:
        result = registry.activate(runtime, run_id, progress=progress, cancel=cancel_event)
    finally:
        state.activation_cancel = None
    if not result.rebuilt:
        return f"**{run_id}** is already active and its index is current."
    failed = f" ({len(result.failures)} images could not be read)" if result.failures else ""
    return f"**{run_id}** is now active: {result.indexed} images indexed{failed}."


def cancel_activation(runtime: Runtime, state: TrainingState, session_password: str | None) -> str:
    """Stop a running activation; the previous model and index keep serving."""
    check_admin(runtime.settings, session_password)
    if state.activation_cancel is None:
        return "No activation is running."
    state.activation_cancel.set()
    return "Cancelling the rebuild; the current model keeps answering searches."
