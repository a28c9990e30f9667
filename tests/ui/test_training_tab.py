"""The Training tab's actions: admin-only, background run with curves, cancel/resume, activate."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from carmatch.errors import AccessDeniedError, BusyError, CarmatchError
from carmatch.runtime import Runtime
from carmatch.training import registry
from carmatch.training.config import TrainConfig
from carmatch.ui import training_actions as actions
from tests.training_support import fill_with_cars

PASSWORD = "let-me-train"


@pytest.fixture
def admin_runtime(runtime: Runtime, tmp_path: Path) -> Runtime:
    runtime.settings = replace(runtime.settings, admin_password=PASSWORD)
    fill_with_cars(runtime, tmp_path / "cars", seeds=3)
    return runtime


def start_small(runtime: Runtime, state: actions.TrainingState, password: str = PASSWORD) -> str:
    return actions.start(runtime, state, password, epochs=2, batch_size=16, lr=2e-3, unfreeze=-1, accum_steps=1)


def test_training_needs_the_admin_password(admin_runtime: Runtime) -> None:
    state = actions.TrainingState()
    for password in ("", "wrong"):
        with pytest.raises(AccessDeniedError):
            start_small(admin_runtime, state, password)
        with pytest.raises(AccessDeniedError):
            actions.activate(admin_runtime, state, password, "base", lambda d, t, m: None)
    assert state.job is None
    assert actions.models_table(admin_runtime)["id"].tolist() == ["base"]


def test_without_a_configured_password_training_is_read_only(runtime: Runtime) -> None:
    with pytest.raises(AccessDeniedError, match="CARMATCH_ADMIN_PASSWORD"):
        start_small(runtime, actions.TrainingState(), "anything")


def test_summary_shows_pairs_by_split_and_device(admin_runtime: Runtime) -> None:
    text = actions.summary_markdown(admin_runtime)
    assert "54 training pairs" in text and "approved 54" in text
    assert "CPU: expect hours" in text


def test_too_few_pairs_warn_before_start_and_follow_approvals(runtime: Runtime, tmp_path: Path) -> None:
    runtime.settings = replace(runtime.settings, admin_password=PASSWORD)
    fill_with_cars(runtime, tmp_path / "cars", seeds=3)  # 54 pairs; with most rejected a split comes up short
    catalog = runtime.catalog
    ids = sorted(catalog.ids())
    for image_id in ids[4:]:
        catalog.set_review_state(image_id, "rejected")
    assert not actions.can_start(runtime)
    assert "Too few pairs to start" in actions.summary_markdown(runtime)
    with pytest.raises(CarmatchError, match="Too few pairs"):
        start_small(runtime, actions.TrainingState())
    before = catalog.newest_history_id()
    for image_id in ids[4:]:
        catalog.set_review_state(image_id, "approved")
    assert catalog.newest_history_id() > before  # what the tab's timer watches to redraw the counts
    assert actions.can_start(runtime) and "Too few" not in actions.summary_markdown(runtime)


def test_progress_bar_shows_steps_share_and_eta() -> None:
    snap = {"step": 12, "total_steps": 62, "status": "running", "eta_s": 185.0}
    bar = actions.progress_bar(snap)
    assert 'role="progressbar"' in bar and 'aria-valuenow="12"' in bar and 'aria-valuemax="62"' in bar
    assert "width: 19.4%" in bar and "step 12 of 62 (19%)" in bar and "ETA 3m 05s" in bar
    assert "No run in progress" in actions.progress_bar(None)


def test_a_run_trains_in_the_background_and_reports_curves_and_before_after(admin_runtime: Runtime) -> None:
    state = actions.TrainingState()
    message = start_small(admin_runtime, state)
    assert "started" in message
    with pytest.raises(BusyError):
        start_small(admin_runtime, state)  # one job at a time
    assert state.job is not None and state.job.wait(timeout=240)
    view = actions.poll(state)
    assert "finished" in view["status"]
    total = state.job.snapshot()["total_steps"]
    assert f'aria-valuenow="{total}"' in view["progress"] and "(100%)" in view["progress"]  # the bar, full
    assert len(view["loss"]) > 0 and view["loss"]["loss"].notna().all()
    assert set(view["recall"]["metric"]) == {"R@1", "R@5", "R@10"}
    assert view["before_after"] is not None and list(view["before_after"].columns)[1:] == ["base", state.job.run_id]
    run_id = state.job.run_id
    assert run_id in actions.model_choices(admin_runtime)

    assert actions.active_choice(admin_runtime) == "base"
    plan = actions.activation_plan(admin_runtime, PASSWORD, run_id)  # asked first, with what it will cost
    assert f"up to **{admin_runtime.catalog.count()} images**" in plan and "**base**" in plan
    assert admin_runtime.active_model().run_id is None  # asking changed nothing
    gr = pytest.importorskip("gradio")
    from carmatch.ui import training_tab

    with gr.Blocks() as demo:
        training_tab.build(demo, admin_runtime)
    handlers = {f.name: f.fn for f in demo.fns.values() if f.name in ("on_activate", "on_keep")}
    row, shown, message = handlers["on_activate"](PASSWORD, run_id)  # the tab's Activate only asks
    assert row["visible"] is True and shown == plan and message == ""
    row, picker, message = handlers["on_keep"]()
    assert row["visible"] is False and picker["value"] == "base" and "base** stays active" in message
    result = actions.activate(admin_runtime, state, PASSWORD, run_id, lambda d, t, m: None)
    assert "now active" in result
    assert actions.active_choice(admin_runtime) == run_id  # what the picker shows after a reload
    assert actions.activation_plan(admin_runtime, PASSWORD, run_id) == ""  # active and indexed: nothing to ask
    assert admin_runtime.active_model().run_id == run_id
    assert admin_runtime.search(text="a red van", k=3).results  # search answers with the new model
    table = actions.models_table(admin_runtime)
    assert table.loc[table["id"] == run_id, "active"].item() == "✔"


def test_cancel_leaves_a_run_that_can_be_resumed(admin_runtime: Runtime) -> None:
    state = actions.TrainingState()
    actions.start(admin_runtime, state, PASSWORD, epochs=30, batch_size=16, lr=1e-3, unfreeze=-1, accum_steps=1)
    assert "Cancelling" in actions.cancel(admin_runtime, state, PASSWORD)
    assert state.job is not None and state.job.wait(timeout=240)
    first = actions.poll(state)
    assert "cancelled" in first["status"] and "press **Resume**" in first["status"]
    assert ".venv/bin/carmatch" not in first["status"] + first["log"]
    run_id = state.job.run_id
    assert run_id in actions.resumable_runs(admin_runtime)
    assert "resumed" in actions.start(admin_runtime, state, PASSWORD, 0, 0, 0, 0, 1, resume=run_id)
    actions.cancel(admin_runtime, state, PASSWORD)
    assert state.job.wait(timeout=240)
    again = actions.poll(state)  # the resumed run keeps the earlier curves and log
    assert again["recall"].iloc[: len(first["recall"])].equals(first["recall"])
    assert again["log"].startswith(first["log"])


def test_an_anonymous_visitor_sees_no_run_log_model_or_path(
    admin_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    gr = pytest.importorskip("gradio")
    from carmatch.ui import training_tab

    secret = "/srv/carmatch/runs/run-123 log line"
    view = {"status": secret, "loss": None, "recall": None, "log": secret, "before_after": None, "progress": secret}
    monkeypatch.setattr(actions, "poll", lambda state: view)
    monkeypatch.setattr(actions, "summary_markdown", lambda runtime, summary=None: secret)
    with gr.Blocks() as demo:
        training_tab.build(demo, admin_runtime)
    handlers = {f.name: f.fn for f in demo.fns.values() if f.name in ("draw", "refresh", "refresh_when_job_changes")}
    assert set(handlers) == {"draw", "refresh", "refresh_when_job_changes"}
    for password in ("", "wrong"):
        for name, handler in handlers.items():
            assert secret not in repr(handler(password)), name
    assert secret in repr(handlers["draw"](PASSWORD)) and secret in repr(handlers["refresh"](PASSWORD))


def test_caption_views_and_hard_negatives_chosen_in_the_tab_are_kept_with_the_run(admin_runtime: Runtime) -> None:
    state = actions.TrainingState()
    defaults = actions.defaults(admin_runtime)
    assert (defaults["caption_views"], defaults["hard_negatives"]) == (
        TrainConfig(model="m", pretrained="p").caption_views,
        TrainConfig(model="m", pretrained="p").hard_negatives,
    )
    assert defaults["caption_views"] in [value for _, value in actions.CAPTION_VIEW_CHOICES]
    actions.start(admin_runtime, state, PASSWORD, 30, 16, 1e-3, -1, 1, "full:3,attributes:1", 0)
    actions.cancel(admin_runtime, state, PASSWORD)
    assert state.job is not None and state.job.wait(timeout=240)
    run_id = state.job.run_id
    recorded = registry.get_model(admin_runtime.catalog, run_id).config
    saved = json.loads((admin_runtime.settings.runs_dir / run_id / "config.json").read_text())
    for config in (recorded, saved):
        assert (config["caption_views"], config["hard_negatives"]) == ("full:3,attributes:1", 0)


@pytest.mark.parametrize(
    "views,hard,said",
    [
        ("colour", 1, "caption views 'colour'"),
        ("", 1, "caption views"),
        ("full", -1, "hard negatives"),
        ("full", 1.5, "hard negatives"),
        ("full", None, "Fill in every hyperparameter"),
    ],
)
def test_a_bad_caption_view_mix_or_hard_negative_count_is_refused_by_its_label(
    runtime: Runtime, views: str, hard: float | None, said: str
) -> None:
    runtime.settings = replace(runtime.settings, admin_password=PASSWORD)  # refused before any pair is read
    state = actions.TrainingState()
    with pytest.raises(CarmatchError, match=said):
        actions.start(runtime, state, PASSWORD, 1, 16, 1e-3, -1, 1, views, hard)
    assert state.job is None and registry.list_models(runtime.catalog) == []
