"""The admin CLI: ingest summary, search --json shape, clear errors with exit status 1, info."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from admin.cli import main
from carmatch.config import Settings


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ingest_prints_summary_and_rerun_finds_everything_present(
    settings: Settings, car_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (car_folder / "broken.jpg").write_bytes(b"garbage")
    code, out, _ = run(capsys, "ingest", str(car_folder))
    assert code == 0
    assert "Added 6 new image(s), 0 already present, 1 skipped" in out
    assert "broken.jpg" in out
    code, out, _ = run(capsys, "ingest", str(car_folder))
    assert "Added 0 new image(s), 6 already present" in out and "0 embedded" in out


def test_search_json_lists_results_best_first(
    settings: Settings, car_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "ingest", str(car_folder))
    code, out, _ = run(capsys, "search", "red pickup truck", "--k", "4", "--json")
    assert code == 0
    results = json.loads(out)
    assert len(results) == 4
    frame_keys = {"frame", "frame_path", "box", "detector_score"}  # set only for cars cut from traffic frames
    assert all(set(r) == {"id", "path", "score", "caption", *frame_keys} for r in results)
    assert all(r[key] is None for r in results for key in frame_keys)  # whole images here
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    photo = car_folder / "blue_pickup.png"
    code, out, _ = run(capsys, "search", "--image", str(photo), "--json", "--k", "2")
    assert json.loads(out)[0]["path"] == str(photo.resolve())


@pytest.mark.parametrize(
    "argv,message",
    [
        (["search", "   "], "empty"),
        (["search"], "description"),
        (["search", "--image", "/nonexistent/photo.jpg"], "cannot read"),
        (["search", "red car", "--where", "colour"], "key=value"),
        (["ingest", "/nonexistent/folder"], "not a folder"),
    ],
)
def test_bad_input_exits_1_with_a_message_not_a_traceback(
    settings: Settings, car_folder: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    run(capsys, "ingest", str(car_folder))
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err


def test_search_on_empty_collection_exits_1(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "search", "red car")
    assert code == 1 and "collection is empty" in err


def test_info_reports_model_count_index_and_home(
    settings: Settings, car_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "ingest", str(car_folder))
    code, out, _ = run(capsys, "info", "--json")
    info = json.loads(out)
    assert code == 0
    assert info["images"] == 6 and info["index_size"] == 6
    assert info["device"] == "cpu"
    assert info["home"] == str(settings.home.resolve())
    assert info["model"].endswith("tiny-clip.json")
    code, out, _ = run(capsys, "info")
    assert "Images:" in out and "Index size:" in out


def test_index_rebuild_restores_a_deleted_index(
    settings: Settings, car_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    run(capsys, "ingest", str(car_folder))
    shutil.rmtree(settings.index_dir)
    code, _, err = run(capsys, "search", "red car")
    assert code == 1 and "index rebuild" in err
    code, out, _ = run(capsys, "index", "rebuild")
    assert code == 0 and "6 images" in out
    code, out, _ = run(capsys, "search", "red car", "--json")
    assert len(json.loads(out)) == 6


def test_missing_weights_give_actionable_message(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CARMATCH_MODEL", "ViT-B-32-256")
    monkeypatch.setenv("CARMATCH_PRETRAINED", "datacomp_s34b_b86k")
    code, _, err = run(capsys, "search", "red car")
    assert code == 1
    assert "CARMATCH_PRETRAINED" in err and "internet" in err
