"""Exports: CSV/JSONL match the catalog; Titan JSONL respects Titan's limits, converts or skips, uploads to S3."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from carmatch.catalog import Catalog
from carmatch.dataset import export, titan_upload
from carmatch.dataset import export_titan as titan_export
from carmatch.dataset.training_set import SplitFractions, set_collection_split
from carmatch.errors import InvalidInputError
from tests.dataset_support import add, car


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    with Catalog(tmp_path / "c.db") as cat:
        yield cat


@pytest.fixture
def mixed(catalog: Catalog, tmp_path: Path) -> dict[str, str]:
    d = tmp_path / "img"
    return {
        "approved": add(catalog, car(d / "a.jpg", 1), "a red sedan", color="red", body_type="sedan"),
        "unreviewed": add(catalog, car(d / "b.png", 2), "a red coupe", "unreviewed"),
        "rejected": add(catalog, car(d / "c.png", 3), "a wrong caption", "rejected"),
        "uncaptioned": add(catalog, car(d / "d.png", 4), None),
    }


def test_csv_and_jsonl_hold_the_approved_pairs(catalog: Catalog, mixed: dict[str, str], tmp_path: Path) -> None:
    report = export.export_csv(catalog, tmp_path / "out" / "pairs.csv")
    rows = list(csv.DictReader(open(tmp_path / "out" / "pairs.csv", encoding="utf-8")))
    assert report.records == 1 and [r["id"] for r in rows] == [mixed["approved"]]
    record = catalog.get(mixed["approved"])
    assert rows[0]["file"] == record.path and rows[0]["caption"] == "a red sedan"
    assert rows[0]["color"] == "red" and rows[0]["body_type"] == "sedan" and rows[0]["make"] == ""

    export.export_jsonl(catalog, tmp_path / "pairs.jsonl", include_unreviewed=True)
    lines = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert {line["id"] for line in lines} == {mixed["approved"], mixed["unreviewed"]}  # never the rejected
    for line in lines:
        stored = catalog.get(line["id"])
        assert line["file"] == stored.path and line["caption"] == stored.caption
        assert {"id", "file", "caption", "color", "body_type", "make", "model", "viewpoint"} <= set(line)
    assert not list(tmp_path.glob(".pairs.jsonl.*"))  # no temp files left behind


def test_token_estimate_is_conservative() -> None:
    caption = "a dark blue 2019 Toyota Corolla hatchback, seen from the front-left, parked on a wet street"
    words = len(caption.split())
    assert titan_export.approx_tokens(caption) >= words * 1.3  # real BPE tokenizers give ~1.3 tokens a word
    assert titan_export.titan_caption_problem("word " * 120) is not None  # 120 words: over 128 estimated tokens
    assert titan_export.titan_caption_problem("a red car") is None
    assert "2560" in (titan_export.titan_caption_problem("x" * 2561) or "").replace(",", "")


def hold_out_almost_nothing(catalog: Catalog) -> None:
    """A collection split with a 0.1 % test split, so every image's Titan checks show (the held-out
    test split has its own tests in test_training_set.py)."""
    set_collection_split(catalog, SplitFractions(validation=0.1, test=0.001))


def test_titan_export_converts_skips_splits_and_warns(catalog: Catalog, tmp_path: Path) -> None:
    hold_out_almost_nothing(catalog)
    d = tmp_path / "img"
    good = [add(catalog, car(d / f"ok{i}.jpg", 10 + i), f"a red sedan number {i}") for i in range(20)]
    webp = add(catalog, car(d / "w.webp", 40), "a red sedan in webp")
    bmp = add(catalog, car(d / "b.bmp", 41), "a red sedan in bmp")
    huge = add(catalog, car(d / "huge.png", 42, size=(5000, 1500)), "a very large red sedan")
    tiny = add(catalog, car(d / "tiny.png", 43, size=(96, 64)), "a tiny red sedan")
    thin = add(catalog, car(d / "thin.png", 44, size=(700, 150)), "a panoramic red sedan")
    wordy = add(catalog, car(d / "wordy.png", 45), "red " * 200)
    out = tmp_path / "titan"
    report = titan_export.export_titan(catalog, out, "s3://my-bucket/cars")
    train = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    validation = [json.loads(x) for x in (out / "validation.jsonl").read_text().splitlines()]
    assert report.held_out == 0
    assert len(train) + len(validation) == 23 and len(validation) >= titan_export.TITAN_MIN_VALIDATION
    refs = {rec["image-ref"] for rec in train + validation}
    assert f"s3://my-bucket/cars/{good[0]}.jpg" in refs
    assert f"s3://my-bucket/cars/{webp}.jpg" in refs and f"s3://my-bucket/cars/{bmp}.jpg" in refs
    assert f"s3://my-bucket/cars/{huge}.jpg" in refs
    assert all(set(rec) == {"image-ref", "caption"} for rec in train + validation)
    skipped = dict(report.skipped)
    assert set(skipped) == {tiny, thin, wordy}
    assert "128 px" in skipped[tiny] and "aspect ratio" in skipped[thin] and "tokens" in skipped[wordy]
    with Image.open(out / "images" / f"{huge}.jpg") as img:
        assert img.format == "JPEG" and max(img.size) == titan_export.TITAN_MAX_SIDE_PX
    with Image.open(out / "images" / f"{webp}.jpg") as img:
        assert img.format == "JPEG"
    assert report.converted == 3
    assert any("at least 1000" in w and "refuse" in w for w in report.warnings)
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["images"]) == 23 and len(manifest["skipped"]) == 3

    again = titan_export.export_titan(catalog, tmp_path / "titan2", "s3://my-bucket/cars/")
    assert (tmp_path / "titan2" / "validation.jsonl").read_text() == (out / "validation.jsonl").read_text()
    assert again.train == report.train  # the split is deterministic


def test_titan_export_warns_once_and_never_suggests_a_flag_already_given(
    catalog: Catalog, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    d = tmp_path / "img"
    for i in range(12):
        add(catalog, car(d / f"ok{i}.jpg", 10 + i), f"a red sedan number {i}")
    with caplog.at_level(logging.WARNING):
        given = titan_export.export_titan(catalog, tmp_path / "t1", "s3://my-bucket/cars/", include_unreviewed=True)
        plain = titan_export.export_titan(catalog, tmp_path / "t2", "s3://my-bucket/cars/")
    too_few = [w for w in given.warnings if "training records" in w]
    assert len(too_few) == 1 and "--include-unreviewed" not in too_few[0]
    assert any("--include-unreviewed" in w for w in plain.warnings if "training records" in w)
    assert [r for r in caplog.records if r.name == "carmatch.dataset.export_titan"] == []  # the summary says it


def test_titan_needs_an_s3_prefix(catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="s3-prefix"):
        titan_export.export_titan(catalog, tmp_path, "")
    with pytest.raises(InvalidInputError, match="not an S3 prefix"):
        titan_export.export_titan(catalog, tmp_path, "https://example.com/x/")


def test_titan_upload_copies_images_and_jsonl_and_skips_what_is_there(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from moto import mock_aws

    for module in (titan_export, titan_upload):  # the export's and upload's mechanics, not Titan's minimums
        monkeypatch.setattr(module, "TITAN_MIN_TRAIN", 1)
        monkeypatch.setattr(module, "TITAN_MIN_VALIDATION", 1)
    hold_out_almost_nothing(catalog)
    d = tmp_path / "img"
    for i in range(3):
        add(catalog, car(d / f"ok{i}.png", 60 + i), f"a red sedan {i}")
    add(catalog, car(d / "w.webp", 70), "a converted one")
    out = tmp_path / "titan"
    titan_export.export_titan(catalog, out, "s3://carmatch-test/titan/")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="carmatch-test")
        first = titan_upload.upload_titan(s3, out)
        assert first.uploaded == 6 and first.present == 0  # 4 images + 2 JSONL
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="carmatch-test")["Contents"]}
        assert {"titan/train.jsonl", "titan/validation.jsonl"} <= keys and len(keys) == 6
        body = s3.get_object(Bucket="carmatch-test", Key="titan/train.jsonl")["Body"].read()
        assert body == (out / "train.jsonl").read_bytes()
        second = titan_upload.upload_titan(s3, out)
        assert second.uploaded == 0 and second.present == 6
        (out / "train.jsonl").write_text((out / "train.jsonl").read_text() + "\n")  # a changed JSONL is re-sent
        assert titan_upload.upload_titan(s3, out).uploaded == 1
