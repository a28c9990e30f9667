"""Library errors carry what went wrong as data; the CLI and the app each phrase it for their audience."""

from __future__ import annotations

from pathlib import Path

import pytest

from admin.cli import main
from carmatch.captions.batch_submit import BatchLimits, BatchTooSmallError, plan_jobs
from carmatch.errors import CarmatchError, InvalidInputError, Problem
from carmatch.runtime import Runtime
from carmatch.search.searcher import MAX_K
from carmatch.ui import training_actions
from carmatch.ui.phrasing import FIELD_LABELS, for_browser, phrased

PASSWORD = "pass-for-errors"


def k_error() -> InvalidInputError:
    return InvalidInputError(field="k", value=0, limit=(1, MAX_K), label="The number of results")


def test_a_limit_gives_a_complete_sentence_and_stays_as_data() -> None:
    exc = k_error()
    assert str(exc) == f"The number of results must be between 1 and {MAX_K} (got 0)."
    assert (exc.field, exc.value, exc.limit) == ("k", 0, (1, MAX_K))


@pytest.mark.parametrize(
    "limit,value,reason",
    [
        ((2, None), 1, "must be at least 2 (got 1)"),
        ((None, 9), 10, "must be at most 9 (got 10)"),
        (200, 201, "must be at most 200 (got 201)"),
        (("fp32", "bf16"), "fp8", "must be one of fp32, bf16 (got 'fp8')"),
        (None, "", "is missing"),
    ],
)
def test_the_reason_follows_from_the_kind_of_limit(limit: object, value: object, reason: str) -> None:
    assert str(InvalidInputError(field="x", value=value, limit=limit)) == f"x {reason}."


def test_each_edge_names_the_field_its_own_way() -> None:
    exc = k_error()
    assert exc.describe({"k": "--k"}) == f"--k must be between 1 and {MAX_K} (got 0)."
    assert for_browser(exc) == f"{FIELD_LABELS['k']} must be between 1 and {MAX_K} (got 0)."
    assert str(exc).startswith("The number of results")  # describing changes nothing in the error


def test_several_problems_follow_the_lead_and_each_is_renamed() -> None:
    exc = InvalidInputError(
        "Invalid settings",
        problems=[Problem("epochs", 0, (1, None)), Problem("batch_size", 1, (2, None), label="--batch-size")],
    )
    assert str(exc) == "Invalid settings: epochs must be at least 1 (got 0); --batch-size must be at least 2 (got 1)."
    assert exc.field == "epochs"  # the first problem's
    assert for_browser(exc) == (
        "Invalid settings: epochs must be at least 1 (got 0); batch size must be at least 2 (got 1)."
    )


def test_a_plain_message_is_kept_exactly_and_has_no_field() -> None:
    exc = CarmatchError("Line one\nline two")
    assert str(exc) == "Line one\nline two" and exc.field is None and exc.problems == ()
    assert exc.describe({"k": "--k"}) == str(exc) and for_browser(exc) == str(exc)


def test_a_hint_follows_and_an_edge_may_replace_it() -> None:
    with pytest.raises(BatchTooSmallError) as info:
        plan_jobs([0, 0, 0], BatchLimits(min_records=100))
    exc = info.value
    assert (exc.field, exc.value, exc.limit) == ("batch_records", 3, (100, None))
    assert str(exc).endswith(exc.hint) and ".venv/bin/carmatch caption live" in exc.hint
    in_app = for_browser(exc)
    assert "only 3 images" in in_app and "Bulk actions" in in_app and "carmatch" not in in_app


def test_rephrased_keeps_the_type_data_and_cause() -> None:
    @phrased
    def action() -> None:
        try:
            raise ValueError("deep cause")
        except ValueError as cause:
            raise k_error() from cause

    with pytest.raises(InvalidInputError) as info:
        action()
    exc = info.value
    assert str(exc) == f"Results must be between 1 and {MAX_K} (got 0)."
    assert (exc.field, exc.value, exc.limit) == ("k", 0, (1, MAX_K))
    assert isinstance(exc.__cause__, InvalidInputError) and isinstance(exc.__cause__.__cause__, ValueError)


def test_the_cli_names_the_flag_on_one_line_before_loading_the_model(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CARMATCH_MODEL", "/no/such/model.json")  # loading it would fail with another message
    assert main(["search", "red car", "--k", "0"]) == 1
    assert capsys.readouterr().err == f"error: --k must be between 1 and {MAX_K} (got 0).\n"
    assert main(["search", "red car", "--image-weight", "2"]) == 1
    assert capsys.readouterr().err == "error: --image-weight must be between 0 and 1 (got 2.0).\n"


def test_the_cli_names_a_dataset_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["dataset", "export", "--format", "titan", "--out", str(tmp_path / "t"), "--s3-prefix", "s3://my-bucket/p/"]
    assert main([*argv, "--validation-fraction", "1.5"]) == 1
    assert capsys.readouterr().err == "error: --validation-fraction must be between 0 and 1 (got 1.5).\n"


def test_the_training_tab_names_its_boxes_not_the_cli_flags(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.with_overrides(admin_password=PASSWORD)
    state = training_actions.TrainingState()
    with pytest.raises(InvalidInputError) as info:
        training_actions.start(runtime, state, PASSWORD, epochs=0, batch_size=1, lr=1e-5, unfreeze=-1, accum_steps=1)
    text = str(info.value)
    assert "epochs 0: train for at least 1 epoch" in text and "batch size 1: contrastive training" in text
    assert "--" not in text and state.job is None
    with pytest.raises(InvalidInputError, match="Fill in every hyperparameter.*learning rate is missing"):
        training_actions.start(runtime, state, PASSWORD, epochs=1, batch_size=8, lr=None, unfreeze=-1, accum_steps=1)
