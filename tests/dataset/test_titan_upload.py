"""Titan export upload: files stream from disk (multipart when large) and unchanged ones are not sent again."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from carmatch.dataset import export_titan, titan_upload
from carmatch.errors import InvalidInputError

BUCKET = "carmatch-test"
MULTIPART_BYTES = 9 * 1024 * 1024  # over upload_file's 8 MiB multipart threshold


def write_export(out: Path, train_bytes: int) -> None:
    """An export folder with no images and a train.jsonl of about ``train_bytes``."""
    out.mkdir(parents=True)
    line = json.dumps({"image-ref": f"s3://{BUCKET}/titan/a.jpg", "caption": "a red sedan " * 20}) + "\n"
    (out / "train.jsonl").write_text(line * (train_bytes // len(line) + 1))
    (out / "validation.jsonl").write_text(line * 8)
    manifest = {"train": f"s3://{BUCKET}/titan/train.jsonl", "validation": f"s3://{BUCKET}/titan/validation.jsonl"}
    (out / "manifest.json").write_text(json.dumps({**manifest, "images": []}))


def test_a_large_jsonl_goes_up_in_parts_and_is_recognised_as_unchanged_afterwards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(titan_upload, "TITAN_MIN_TRAIN", 1)  # the mechanics, not Titan's 1,000-record minimum
    out = tmp_path / "titan"
    write_export(out, MULTIPART_BYTES)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        assert titan_upload.upload_titan(s3, out).uploaded == 2
        head = s3.head_object(Bucket=BUCKET, Key="titan/train.jsonl")
        assert "-" in head["ETag"]  # a multipart ETag: the file went up in parts, not one put_object
        assert head["ContentLength"] == (out / "train.jsonl").stat().st_size
        again = titan_upload.upload_titan(s3, out)
        assert (again.uploaded, again.present) == (0, 2)
        with (out / "validation.jsonl").open("a") as handle:
            handle.write("\n")
        assert titan_upload.upload_titan(s3, out).uris == [f"s3://{BUCKET}/titan/validation.jsonl"]


def test_an_export_below_titans_minimum_is_refused_before_anything_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    out = tmp_path / "titan"
    write_export(out, 10_000)  # about 40 records, well under 1,000
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        with pytest.raises(InvalidInputError) as caught:
            titan_upload.upload_titan(s3, out)
        assert "KeyCount" in s3.list_objects_v2(Bucket=BUCKET) and s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0
    error = caught.value
    assert (error.field, error.limit) == ("train", export_titan.TITAN_MIN_TRAIN) and "nothing was uploaded" in str(
        error
    )
