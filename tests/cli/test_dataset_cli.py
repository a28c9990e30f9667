"""`python -m admin dataset`: export, import with preview and confirmation, approve, reject."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from admin.cli import main
from carmatch.catalog import Catalog
from carmatch.config import Settings


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def home(settings: Settings, car_folder: Path, capsys: pytest.CaptureFixture[str]) -> Settings:
    """An ingested home with captions on four of its six images."""
    assert run(capsys, "ingest", str(car_folder))[0] == 0
    with Catalog(settings.db_path) as cat:
        for record in cat.get_many(cat.ids()).values():
            name = Path(record.path).stem
            if "sedan" in name or "pickup" in name:
                cat.set_caption(record.id, name.replace("_", " "), "claude-batch", {"color": name.split("_")[0]})
    return settings


def states(settings: Settings) -> dict[str, str]:
    with Catalog(settings.db_path) as cat:
        return {Path(r.path).name: r.review_state for r in cat.get_many(cat.ids()).values()}


def test_approve_all_then_export_csv_and_jsonl(
    home: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "dataset", "approve", "--all")
    assert code == 0 and "4 changed of 6 selected" in out and "2 skipped" in out
    code, out, _ = run(capsys, "dataset", "export", "--format", "csv", "--out", str(tmp_path / "pairs.csv"))
    assert code == 0 and "Exported 4 pair(s)" in out
    rows = list(csv.DictReader(open(tmp_path / "pairs.csv", encoding="utf-8")))
    assert {Path(r["file"]).name for r in rows} == {
        "red_sedan.jpg",
        "blue_pickup.png",
        "yellow_sedan.bmp",
        "black_pickup.jpeg",
    }
    code, _, _ = run(capsys, "dataset", "export", "--format", "jsonl", "--out", str(tmp_path / "pairs.jsonl"))
    lines = [json.loads(x) for x in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert code == 0 and len(lines) == 4 and all(x["caption"] and x["color"] for x in lines)


def test_reject_by_id_prefix_keeps_it_out_of_exports(
    home: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with Catalog(home.db_path) as cat:
        red = next(r.id for r in cat.get_many(cat.ids()).values() if "red_sedan" in r.path)
    code, out, _ = run(capsys, "dataset", "reject", "--ids", red[:10])
    assert code == 0 and "1 changed of 1" in out and states(home)["red_sedan.jpg"] == "rejected"
    code, out, _ = run(
        capsys, "dataset", "export", "--format", "jsonl", "--include-unreviewed", "--out", str(tmp_path / "p.jsonl")
    )
    assert "Exported 3 pair(s)" in out
    code, _, err = run(capsys, "dataset", "approve", "--ids", "zz")
    assert code == 1 and "ids are hexadecimal" in err


def test_import_shows_preview_and_asks_before_applying(
    home: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "caps.csv"
    path.write_text("file,caption\nwhite_van.png,a white van\nsub/green_van.webp,a green van\nnope.jpg,x\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code, out, _ = run(capsys, "dataset", "import", str(path))
    assert code == 1 and "2 caption(s) will change" in out and "nope.jpg" in out and "Nothing changed." in out
    with Catalog(home.db_path) as cat:
        assert not [r for r in cat.get_many(cat.ids()).values() if r.caption_source == "imported"]
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    code, out, _ = run(capsys, "dataset", "import", str(path))
    assert code == 0 and "Import: 2 changed of 2" in out
    code, out, _ = run(capsys, "dataset", "import", str(path), "--yes")
    assert code == 0 and "0 caption(s) will change, 2 already match" in out and "Nothing to change." in out


def test_titan_export_needs_prefix_and_upload_only_for_titan(
    home: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "dataset", "export", "--format", "titan", "--out", str(tmp_path / "t"))
    assert code == 1 and "--s3-prefix" in err
    code, _, err = run(capsys, "dataset", "export", "--format", "csv", "--out", str(tmp_path / "x.csv"), "--upload")
    assert code == 1 and "--upload is for --format titan" in err
    code, out, _ = run(
        capsys,
        "dataset",
        "export",
        "--format",
        "titan",
        "--include-unreviewed",
        "--out",
        str(tmp_path / "t"),
        "--s3-prefix",
        "s3://bucket/cars/",
    )
    assert code == 0 and "WARNING" in out and "Bedrock will refuse" in out
    assert (tmp_path / "t" / "train.jsonl").exists() and (tmp_path / "t" / "manifest.json").exists()


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "titan"])
def test_export_to_an_unwritable_path_exits_1_with_a_message(
    home: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    extra = ["--include-unreviewed", "--s3-prefix", "s3://bucket/cars/"] if fmt == "titan" else []
    code, _, err = run(capsys, "dataset", "export", "--format", fmt, "--out", str(blocker / "out"), *extra)
    assert code == 1 and "a-file is not a folder" in err and "Traceback" not in err
    assert blocker.read_text() == "not a folder"
    if fmt != "titan":
        code, _, err = run(capsys, "dataset", "export", "--format", fmt, "--out", str(tmp_path), *extra)
        assert code == 1 and "is a folder" in err


def test_dataset_stats_prints_the_counts_the_dataset_tab_shows(
    home: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from carmatch.runtime import Runtime
    from carmatch.ui.dataset_actions import counts_markdown

    assert run(capsys, "dataset", "approve", "--ids", *[i[:12] for i in sorted(states_ids(home))[:1]])[0] == 0
    code, out, _ = run(capsys, "dataset", "stats", "--json")
    stats = json.loads(out)
    assert code == 0
    assert stats["images"] == 6 and stats["uncaptioned"] == 2 and stats["failed_captioning"] == 0
    assert stats["review_state"] == {"unreviewed": 5, "approved": 1, "rejected": 0}
    assert stats["caption_source"] == {"claude-batch": 4}
    runtime = Runtime(home)
    try:
        shown = counts_markdown(runtime)
    finally:
        runtime.close()
    c = stats["review_state"]
    assert f"unreviewed **{c['unreviewed']}** · approved **{c['approved']}** · rejected **{c['rejected']}**" in shown
    assert "claude-batch 4" in shown
    code, text, _ = run(capsys, "dataset", "stats")
    assert code == 0 and "uncaptioned        2" in text and "claude-batch" in text


def states_ids(settings: Settings) -> list[str]:
    with Catalog(settings.db_path) as cat:
        return [r.id for r in cat.get_many(cat.ids()).values() if r.caption]
