"""A Titan search model (CARMATCH_MODEL=bedrock/...) in the registry: activate, info, model list, eval and train."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from admin.cli import main
from carmatch.embedding.titan_embedder import TitanEmbedder
from carmatch.errors import InvalidInputError
from carmatch.runtime import Runtime
from carmatch.training import registry
from carmatch.training.config import TrainConfig
from tests.cloud.test_titan_provision import PROVISIONED, finished_job
from tests.embedding.test_titan_embedder import ANY_BODY, TITAN, answer, runtime_client
from tests.training_support import nudged_checkpoint


@pytest.fixture
def titan_home(runtime: Runtime, car_folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Runtime, Any]:
    """A home indexed by the tiny CLIP model whose settings now name Titan (a stubbed client: no call leaves)."""
    runtime.ingestor().ingest_folder(car_folder)
    client, stub = runtime_client()
    monkeypatch.setenv("CARMATCH_MODEL", f"bedrock/{TITAN}")
    monkeypatch.setenv("CARMATCH_EMBED_DIM", "256")
    monkeypatch.setattr(
        "carmatch.embedding.loading.load_titan", lambda name, settings: TitanEmbedder(client, TITAN, 256, 1)
    )
    return runtime, stub


def test_activating_base_with_a_titan_model_embeds_with_titan_and_info_names_it(
    titan_home: tuple[Runtime, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    runtime, stub = titan_home
    clip_key = runtime.store.read_manifest().model_key
    rng = np.random.default_rng(0)
    for _ in range(6):  # each image once: the CLIP embeddings are not Titan's
        stub.add_response("invoke_model", answer(rng.normal(size=256)), ANY_BODY)
    assert main(["model", "activate", "base"]) == 0
    assert "Activated base: 6 images indexed with titan-256@" in capsys.readouterr().out
    manifest = runtime.store.read_manifest()
    assert manifest.model_key != clip_key and manifest.model_key.startswith("titan-256@")

    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["model"], info["pretrained"], info["device"]) == (f"bedrock/{TITAN}", "bedrock", "bedrock")
    assert info["model_key"] == manifest.model_key and info["problems"] == []
    assert main(["info"]) == 0
    assert "Pretrained:   bedrock" in capsys.readouterr().out  # not the CLIP tag of CARMATCH_PRETRAINED

    assert main(["model", "list", "--json"]) == 0
    base = json.loads(capsys.readouterr().out)[0]
    assert (base["id"], base["base_model"], base["base_pretrained"], base["active"]) == (
        "base",
        f"bedrock/{TITAN}",
        "bedrock",
        True,
    )
    assert main(["model", "activate", "base"]) == 0  # already current: no call to Bedrock
    assert "base is already active" in capsys.readouterr().out
    stub.assert_no_pending_responses()


def test_eval_and_train_refuse_a_titan_model_before_any_work(
    titan_home: tuple[Runtime, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    runtime, stub = titan_home
    runs = runtime.settings.runs_dir
    assert main(["eval", "--model", "base"]) == 1
    assert "Titan on Bedrock" in capsys.readouterr().err
    assert main(["train", "--epochs", "1"]) == 1
    assert "titan finetune" in capsys.readouterr().err
    assert not (runs.exists() and any(runs.glob("run-*")))  # no run folder was made
    with pytest.raises(InvalidInputError, match="Titan on Bedrock"):
        TrainConfig(model=f"bedrock/{TITAN}", pretrained="bedrock").validate()
    stub.assert_no_pending_responses()


def test_a_fine_tuned_clip_run_activates_while_settings_name_titan(
    titan_home: tuple[Runtime, Any], tiny_model: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime, stub = titan_home
    checkpoint = nudged_checkpoint(tiny_model, tmp_path / "runs" / "run-test" / "best.pt")
    registry.register_model(
        runtime.catalog, "run-test", "local", tiny_model[0], tiny_model[1], "ready", checkpoint=str(checkpoint)
    )
    assert main(["model", "activate", "run-test"]) == 0
    assert "Activated run-test: 6 images indexed" in capsys.readouterr().out
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["model"], info["pretrained"], info["active_run"]) == (tiny_model[0], str(checkpoint), "run-test")
    assert info["device"] == "cpu" and info["problems"] == []
    stub.assert_no_pending_responses()  # Titan was never called


def test_activating_a_fine_tuned_titan_job_says_how_to_search_with_it(
    runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    finished_job(runtime)  # a finished Titan customization job, no provisioned throughput yet
    assert main(["model", "activate", "carmatch-titan-1"]) == 1
    assert "titan provision carmatch-titan-1" in capsys.readouterr().err
    record = registry.get_model(runtime.catalog, "carmatch-titan-1")
    config = {**record.config, registry.PROVISIONED_KEY: PROVISIONED}
    registry.register_model(
        runtime.catalog, record.id, "titan", record.base_model, "bedrock", "ready", None, config, record.metrics
    )
    assert main(["model", "activate", "carmatch-titan-1"]) == 1
    assert f"CARMATCH_MODEL=bedrock/{PROVISIONED}" in capsys.readouterr().err
    assert runtime.active_model().run_id is None  # nothing changed
