"""A run killed mid-training shows as interrupted (resume or delete), never 'running' forever."""

from __future__ import annotations

from carmatch.runtime import Runtime
from carmatch.training import registry
from carmatch.training.runs import training_slot


def statuses(runtime: Runtime) -> dict[str, str]:
    return {row["id"]: row["status"] for row in registry.model_table(runtime)}


def test_a_run_no_process_trains_shows_interrupted_and_a_live_one_running(runtime: Runtime) -> None:
    registry.register_model(runtime.catalog, "killed-run", "local", "tiny", "none", "running")
    registry.register_model(runtime.catalog, "remote-run", "sagemaker", "tiny", "none", "running")
    assert statuses(runtime)["killed-run"] == registry.INTERRUPTED == "interrupted — resume or delete"
    assert statuses(runtime)["remote-run"] == "running"  # a SageMaker job runs elsewhere: only AWS knows
    with training_slot(runtime.settings.runs_dir):  # a training job holds the home's lock
        assert statuses(runtime)["killed-run"] == "running"
    assert statuses(runtime)["killed-run"] == registry.INTERRUPTED
