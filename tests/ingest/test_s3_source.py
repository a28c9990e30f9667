"""Ingest from S3 (moto): listing, downloads, validation, resume, cancel, and bad sources changing nothing."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from admin.cli import main
from carmatch.config import Settings
from carmatch.errors import AwsError, InvalidInputError
from carmatch.ingest.pipeline import Limits
from carmatch.ingest.s3_source import S3ImageSource
from carmatch.locations import s3_uri_of
from carmatch.runtime import Runtime
from tests.drawing import draw_car

BUCKET = "carmatch-cams"


def jpeg(color: str, seed: int) -> bytes:
    buf = io.BytesIO()
    draw_car(color, seed=seed).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


class CountingClient:
    """The moto client, counting downloads (s3transfer's download_fileobj, or get_object) per key."""

    def __init__(self, client: Any):
        self.client = client
        self.fetched: list[str] = []
        self.lock = threading.Lock()

    def get_paginator(self, name: str) -> Any:
        return self.client.get_paginator(name)

    def get_object(self, **kwargs: Any) -> Any:
        with self.lock:
            self.fetched.append(kwargs["Key"])
        return self.client.get_object(**kwargs)

    def download_fileobj(self, bucket: str, key: str, fileobj: Any, **kwargs: Any) -> None:
        with self.lock:
            self.fetched.append(key)
        self.client.download_fileobj(bucket, key, fileobj, **kwargs)


@pytest.fixture
def s3() -> Iterator[CountingClient]:
    """A moto S3 holding cars under cams/ (four images, one duplicate), plus things that are not images."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
        client.create_bucket(Bucket=BUCKET)
        put = lambda key, body: client.put_object(Bucket=BUCKET, Key=key, Body=body)  # noqa: E731
        put("cams/red.jpg", jpeg("red", 1))
        put("cams/a/blue.jpg", jpeg("blue", 2))
        put("cams/a/b/green.jpg", jpeg("green", 3))
        put("cams/a/red-again.jpg", jpeg("red", 1))  # same bytes as cams/red.jpg: one image
        put("cams/broken.jpg", b"not a jpeg at all")
        put("cams/notes.txt", b"not an image")
        put("cams/.hidden/x.jpg", jpeg("black", 4))
        put("cams/sub/", b"")  # a console 'folder'
        put("other/white.jpg", jpeg("white", 5))  # outside the prefix
        yield CountingClient(client)


def source(s3: Any, settings: Settings, uri: str = f"s3://{BUCKET}/cams/", **kwargs: Any) -> S3ImageSource:
    return S3ImageSource(s3, uri, settings.home, **kwargs)


def test_ingest_from_s3_adds_each_image_once_keyed_by_content_with_its_s3_uri(
    s3: CountingClient, settings: Settings, runtime: Runtime
) -> None:
    calls: list[tuple[int, int, str]] = []
    report = source(s3, settings, page_keys=2, round_objects=2).ingest(  # several pages and rounds
        runtime.ingestor, lambda done, total, message: calls.append((done, total, message))
    )
    assert calls[-1] == (5, 5, f"ingesting s3://{BUCKET}/cams/")  # one bar: every downloaded image, done
    assert [done for done, _, _ in calls] == sorted(done for done, _, _ in calls)

    assert (report.listed, report.downloaded, report.ingest.added, report.ingest.embedded) == (5, 5, 3, 3)
    assert report.ingest.skipped == [(f"s3://{BUCKET}/cams/broken.jpg", "not an image, or a format Pillow cannot read")]
    uris = sorted(s3_uri_of(path, settings.home) for _, path in runtime.catalog.image_paths())
    assert uris == [f"s3://{BUCKET}/cams/a/{key}" for key in ("b/green.jpg", "blue.jpg", "red-again.jpg")]  # 1st listed
    for _, path in runtime.catalog.image_paths():  # pixels live in the local copy under the home folder
        assert Path(path).is_file() and Path(path).is_relative_to(settings.home.resolve() / "s3" / BUCKET)
    assert len(runtime.search(text="a car", k=10).results) == 3
    assert "5 image object(s) under s3://carmatch-cams/cams/: 5 downloaded" in report.summary()


def test_ingesting_again_downloads_nothing_and_adds_nothing(
    s3: CountingClient, settings: Settings, runtime: Runtime
) -> None:
    source(s3, settings).ingest(runtime.ingestor)
    s3.fetched.clear()
    again = source(s3, settings).ingest(runtime.ingestor)
    assert s3.fetched == [] and (again.reused, again.downloaded, again.ingest.added, again.ingest.embedded) == (
        5,
        0,
        0,
        0,
    )
    assert runtime.catalog.count() == 3


def test_a_deleted_local_copy_or_a_changed_object_is_downloaded_again(
    s3: CountingClient, settings: Settings, runtime: Runtime
) -> None:
    source(s3, settings).ingest(runtime.ingestor)
    record = next(r for r in runtime.catalog.get_many(runtime.catalog.ids()).values() if r.path.endswith("green.jpg"))
    Path(record.path).unlink()
    s3.client.put_object(Bucket=BUCKET, Key="cams/a/blue.jpg", Body=jpeg("yellow", 9))  # a new photo at the key
    s3.fetched.clear()

    problems = runtime.info(load_model=False, check_files=True)["problems"]
    assert any(f"ingest s3://{BUCKET}/cams/a/b/` downloads them back" in problem for problem in problems)

    report = source(s3, settings).ingest(runtime.ingestor)
    assert sorted(s3.fetched) == ["cams/a/b/green.jpg", "cams/a/blue.jpg"]
    assert (report.ingest.added, report.ingest.present) == (1, 3)
    assert Path(record.path).is_file() and runtime.catalog.get(record.id).path == record.path


def test_an_object_over_the_size_limit_is_skipped_without_downloading_it(
    s3: CountingClient, settings: Settings, runtime: Runtime
) -> None:
    big = jpeg("red", 1)
    report = source(s3, settings, limits=Limits(max_bytes=len(big) - 1)).ingest(runtime.ingestor)
    assert "cams/red.jpg" not in s3.fetched and "cams/a/red-again.jpg" not in s3.fetched
    reasons = dict(report.ingest.skipped)
    assert "over the" in reasons[f"s3://{BUCKET}/cams/red.jpg"] and "MB limit" in reasons[f"s3://{BUCKET}/cams/red.jpg"]


def test_an_object_larger_than_listed_is_cut_off_while_streaming_and_skipped(
    s3: CountingClient, settings: Settings, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = s3.download_fileobj
    big = jpeg("red", 1)
    s3.client.put_object(Bucket=BUCKET, Key="elsewhere/big.jpg", Body=big + b"\0" * len(big))
    monkeypatch.setattr(s3, "download_fileobj", lambda bucket, key, f: real(bucket, "elsewhere/big.jpg", f))  # grew
    report = source(s3, settings, limits=Limits(max_bytes=len(big) + 10)).ingest(runtime.ingestor)
    assert "over the" in dict(report.ingest.skipped)[f"s3://{BUCKET}/cams/red.jpg"]
    assert not [p for p in (settings.home / "s3").rglob("*") if p.is_file()]  # no partial copy is left


def test_access_denied_on_download_stops_the_run_with_the_fix_and_ingests_nothing(
    s3: CountingClient, settings: Settings, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    def refuse(*args: Any, **kwargs: Any) -> Any:  # what s3transfer raises: HeadObject's bare 403
        raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject")

    monkeypatch.setattr(s3, "download_fileobj", refuse)
    with pytest.raises(AwsError, match="Cannot download s3://carmatch-cams/cams/.*access denied"):
        source(s3, settings).ingest(runtime.ingestor)
    assert runtime.catalog.count() == 0


def test_a_key_that_cannot_be_a_file_name_is_skipped_and_writes_nothing_outside_the_copy(
    s3: CountingClient, settings: Settings, runtime: Runtime
) -> None:
    s3.client.put_object(Bucket=BUCKET, Key="cams/../../escape.jpg", Body=jpeg("red", 7))
    report = source(s3, settings).ingest(runtime.ingestor)
    assert "'..' segment" in dict(report.ingest.skipped)[f"s3://{BUCKET}/cams/../../escape.jpg"]
    assert not list(settings.home.resolve().parent.rglob("escape.jpg"))


def test_a_cancelled_ingest_keeps_what_it_did_and_the_next_run_finishes(
    s3: CountingClient, settings: Settings, runtime: Runtime
) -> None:
    cancel = threading.Event()

    def stop_after_first(done: int, total: int, message: str) -> None:
        cancel.set()

    first = source(s3, settings, round_objects=2).ingest(runtime.ingestor, stop_after_first, cancel)
    assert first.interrupted and 0 < runtime.catalog.count() < 3
    rest = source(s3, settings, round_objects=2).ingest(runtime.ingestor)
    assert not rest.interrupted and runtime.catalog.count() == 3


def test_a_missing_bucket_is_named_and_nothing_is_written(
    s3: CountingClient, settings: Settings, runtime: Runtime
) -> None:
    called: list[bool] = []
    with pytest.raises(InvalidInputError, match="names bucket 'no-such-bucket', which does not exist"):
        source(s3, settings, uri="s3://no-such-bucket/cams/").ingest(lambda: called.append(True) or runtime.ingestor())
    assert called == [] and runtime.catalog.count() == 0 and not (settings.home / "s3").exists()


@pytest.mark.parametrize(
    "prefix, found", [("empty/", "no objects"), ("cams/sub/", "no objects"), ("notes/", "1 object")]
)
def test_a_prefix_without_images_is_refused_and_nothing_is_written(
    s3: CountingClient, settings: Settings, runtime: Runtime, prefix: str, found: str
) -> None:
    s3.client.put_object(Bucket=BUCKET, Key="notes/readme.txt", Body=b"hello")
    with pytest.raises(InvalidInputError, match=f"holds {found}.*check the prefix"):
        source(s3, settings, uri=f"s3://{BUCKET}/{prefix}").ingest(runtime.ingestor)
    assert runtime.catalog.count() == 0 and not (settings.home / "s3").exists()


def test_access_denied_names_the_permission_and_nothing_is_written(settings: Settings, runtime: Runtime) -> None:
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    with Stubber(client) as stub:
        stub.add_client_error("list_objects_v2", "AccessDenied", "Access Denied", 403)
        with pytest.raises(AwsError, match=f"access denied.*s3:ListBucket on arn:aws:s3:::{BUCKET}"):
            source(client, settings).ingest(runtime.ingestor)
    assert runtime.catalog.count() == 0


def test_cli_ingests_an_s3_folder_and_refuses_captions_with_it(
    s3: CountingClient, settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    assert main(["ingest", f"s3://{BUCKET}/cams"]) == 0
    out = capsys.readouterr().out
    assert "Added 3 new image(s)" in out and f"s3://{BUCKET}/cams/broken.jpg" in out

    assert main(["ingest", f"s3://{BUCKET}/cams/", "--captions", "caps.csv"]) == 1
    assert "--captions works with a local folder only" in capsys.readouterr().err

    assert main(["ingest", "s3://no-such-bucket/x/"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_titan_export_references_s3_images_where_they_are_and_uploads_only_converted_ones(
    s3: CountingClient, settings: Settings, runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from carmatch.dataset import export_titan, titan_upload

    for n in range(6):  # big enough for Titan (sides >= 128 px); WebP must be converted to JPEG/PNG first
        buf = io.BytesIO()
        draw_car(("red", "blue", "green")[n % 3], size=(256, 160), seed=20 + n).save(
            buf, format="WEBP" if n < 2 else "JPEG"
        )
        s3.client.put_object(Bucket=BUCKET, Key=f"titan-src/car{n}.{'webp' if n < 2 else 'jpg'}", Body=buf.getvalue())
    source(s3, settings, uri=f"s3://{BUCKET}/titan-src/").ingest(runtime.ingestor)
    for image_id in runtime.catalog.ids():
        runtime.catalog.set_caption(image_id, "a car on a road", "human")

    out = tmp_path / "titan"
    report = export_titan.export_titan(runtime.catalog, out, f"s3://{BUCKET}/exports/")
    lines = [json.loads(line) for name in ("train", "validation") for line in (out / f"{name}.jsonl").open()]
    refs = {Path(line["image-ref"]).suffix: line["image-ref"] for line in lines}
    assert report.records == len(lines) >= 4 and set(refs) == {".jpg"}  # the WebPs went to JPEG copies
    in_place = [line["image-ref"] for line in lines if line["image-ref"].startswith(f"s3://{BUCKET}/titan-src/")]
    converted = [line["image-ref"] for line in lines if line["image-ref"].startswith(f"s3://{BUCKET}/exports/")]
    assert in_place and converted and len(in_place) + len(converted) == len(lines)
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(item["image_ref"] for item in manifest["images"]) == sorted(converted)

    monkeypatch.setattr(titan_upload, "TITAN_MIN_TRAIN", 1)  # the mechanics, not Titan's 1,000-record minimum
    monkeypatch.setattr(titan_upload, "TITAN_MIN_VALIDATION", 1)
    uploaded = titan_upload.upload_titan(s3.client, out)
    assert not [uri for uri in uploaded.uris if "/titan-src/" in uri]  # an S3 image is never uploaded again
    assert len(uploaded.uris) == len(converted) + 2
