"""`python -m admin train / eval / model list / model activate`: results printed, errors become exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from admin.cli import main
from carmatch.runtime import Runtime
from tests.training_support import fill_with_cars

pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_list_eval_activate_from_the_command_line(
    runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_with_cars(runtime, tmp_path / "cars", seeds=4)
    generation = runtime.store.current_generation()
    assert main(["train", "--epochs", "2", "--batch-size", "8", "--lr", "2e-3", "--warmup-steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "text→image R@5" in out and "model activate run-" in out
    run_id = out.split("model activate ")[1].split()[0]

    assert main(["model", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["status"], r["active"]) for r in rows] == [("base", "ready", True), (run_id, "ready", False)]

    assert main(["eval", "--model", "base", "--model", run_id, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "test" and set(report["models"]) == {"base", run_id}
    base = report["models"]["base"]
    assert isinstance(base["n_images"], int) and isinstance(base["n_texts"], int)  # counts print as counts
    assert {"t2i_r1", "t2i_r5", "t2i_r10", "i2t_r1", "i2t_r5", "i2t_r10", "t2i_median_rank"} <= set(
        report["models"]["base"]
    )

    assert main(["model", "activate", run_id]) == 0
    assert f"Activated {run_id}" in capsys.readouterr().out
    assert main(["model", "list"]) == 0
    listing = capsys.readouterr().out
    assert f"* {run_id}" in listing
    assert runtime.store.current_generation() != generation

    assert main(["model", "activate", "base"]) == 0
    capsys.readouterr()
    assert main(["eval"]) == 0  # default: base (and the active run, here none)
    assert "text→image R@1" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "--epochs", "0"], "at least 1 epoch"),
        (["train", "--lr", "-0.1"], "must be positive"),
        (["train", "--batch-size", "1000", "--val-fraction", "0.25", "--test-fraction", "0.25"], "larger than the"),
        (["train", "--val-fraction", "0.01", "--test-fraction", "0.01"], "Too few pairs"),
        (["train", "--resume", "run-missing"], "No model run 'run-missing'"),
        (["model", "activate", "run-missing"], "No model run 'run-missing'"),
        (["eval", "--model", "run-missing"], "No model run 'run-missing'"),
        (["train", "--sagemaker"], "--role-arn"),
        (["train", "--caption-views", "full,words"], "--caption-views 'words'"),
        (["train", "--hard-negatives", "-1"], "--hard-negatives"),
    ],
)
def test_bad_input_exits_1_with_a_message_and_leaves_search_alone(
    runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    fill_with_cars(runtime, tmp_path / "cars", seeds=2)
    before = (runtime.active_model(), runtime.store.current_generation())
    assert main(argv) == 1
    assert message in capsys.readouterr().err
    assert (runtime.active_model(), runtime.store.current_generation()) == before


def test_train_with_no_captions_says_what_to_do(
    runtime: Runtime, car_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime.ingestor().ingest_folder(car_folder)
    assert main(["train"]) == 1
    assert "approve" in capsys.readouterr().err


def test_train_and_eval_report_partial_descriptions_with_their_query_counts(
    runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_with_cars(runtime, tmp_path / "cars", seeds=4, attributes=True)
    argv = [
        "train",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--caption-views",
        "full:1,attributes:2",
        "--hard-negatives",
        "2",
    ]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "partial descriptions P@5" in out.err + out.out  # the per-epoch line
    assert "partial description P@5" in out.out  # the before → after table
    run_id = out.out.split("model activate ")[1].split()[0]
    config = json.loads((runtime.settings.runs_dir / run_id / "config.json").read_text())
    assert config["caption_views"] == "full:1,attributes:2" and config["hard_negatives"] == 2

    assert main(["eval", "--model", "base", "--model", run_id, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    counts = report["queries"]
    assert counts["partial_description"] == report["models"]["base"]["attr_queries"] >= 9
    assert counts["full_caption"] == report["models"]["base"]["n_texts"]
    assert {"attr_p5", "attr_r5", "t2i_r5"} <= set(report["models"][run_id])
