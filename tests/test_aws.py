"""The one S3 parser: URIs, bucket names and prefixes as users type them, and the one client factory."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from carmatch import aws
from carmatch.aws import S3Uri, S3UriError, normalise_bucket, normalise_prefix, parse_s3_uri, s3_prefix_uri
from carmatch.errors import InvalidInputError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "uri,expected",
    [
        ("s3://my-bucket/a/b.jsonl", ("my-bucket", "a/b.jsonl")),
        ("  s3://my-bucket/a/b.jsonl\n", ("my-bucket", "a/b.jsonl")),
        ("s3://my.bucket.2/key", ("my.bucket.2", "key")),
        ("s3://abc/x y.png", ("abc", "x y.png")),
    ],
)
def test_a_uri_splits_into_bucket_and_key(uri: str, expected: tuple[str, str]) -> None:
    parsed = parse_s3_uri(uri)
    assert parsed == expected and str(parsed) == uri.strip()
    bucket, key = parsed
    assert (bucket, key) == expected


@pytest.mark.parametrize(
    "uri,problem",
    [
        ("", aws.S3_EMPTY),
        ("   ", aws.S3_EMPTY),
        (None, aws.S3_EMPTY),
        ("https://my-bucket/key", aws.S3_NOT_S3),
        ("my-bucket/key", aws.S3_NOT_S3),
        ("s3:///key", aws.S3_NOT_S3),
        ("s3://", aws.S3_NOT_S3),
        ("s3://my-bucket", aws.S3_NO_KEY),
        ("s3://my-bucket/", aws.S3_NO_KEY),
        ("s3://my-bucket/folder/", aws.S3_NO_KEY),
        ("s3://b/key", aws.S3_BAD_BUCKET),
        ("s3://My-Bucket/key", aws.S3_BAD_BUCKET),
        ("s3://my_bucket/key", aws.S3_BAD_BUCKET),
        ("s3://-bucket/key", aws.S3_BAD_BUCKET),
        ("s3://bucket-/key", aws.S3_BAD_BUCKET),
        ("s3://my..bucket/key", aws.S3_BAD_BUCKET),
        ("s3://192.168.1.1/key", aws.S3_BAD_BUCKET),
        ("s3://" + "a" * 64 + "/key", aws.S3_BAD_BUCKET),
    ],
)
def test_an_unusable_uri_is_refused_with_what_is_wrong(uri: str | None, problem: str) -> None:
    with pytest.raises(S3UriError) as caught:
        parse_s3_uri(uri, field="train", label="The training file")
    error = caught.value
    assert (error.kind, error.field, error.value) == (problem, "train", uri or "")
    assert isinstance(error, InvalidInputError)  # the CLI and the app already report these
    assert str(error).startswith("The training file ")
    assert error.describe({"train": "--train"}).startswith("--train ")  # the CLI names the field by its flag


def test_bucket_name_length_limits_are_inclusive() -> None:
    assert parse_s3_uri("s3://abc/k").bucket == "abc"
    assert parse_s3_uri("s3://" + "a" * 63 + "/k").bucket == "a" * 63


def test_a_prefix_uri_may_name_a_folder_or_a_whole_bucket() -> None:
    assert parse_s3_uri("s3://my-bucket", require_key=False) == S3Uri("my-bucket", "")
    assert parse_s3_uri("s3://my-bucket/out/", require_key=False) == S3Uri("my-bucket", "out/")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("s3://my-bucket/cars", "s3://my-bucket/cars/"),
        ("s3://my-bucket/cars/", "s3://my-bucket/cars/"),
        (" s3://my-bucket/cars// ", "s3://my-bucket/cars/"),
        ("s3://my-bucket", "s3://my-bucket/"),
        ("s3://my-bucket/", "s3://my-bucket/"),
    ],
)
def test_a_prefix_uri_ends_in_exactly_one_slash(text: str, expected: str) -> None:
    assert s3_prefix_uri(text) == expected


def test_a_prefix_uri_names_the_noun_it_wanted() -> None:
    with pytest.raises(S3UriError, match="not an S3 prefix like s3://x-y/z/ .got 'https://example.com/x/'"):
        s3_prefix_uri("https://example.com/x/", example="s3://x-y/z/")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("my-bucket", "my-bucket"),
        ("  my-bucket \t", "my-bucket"),
        ("s3://my-bucket", "my-bucket"),
        ("s3://my-bucket/", "my-bucket"),
        ("/my-bucket/", "my-bucket"),
    ],
)
def test_a_bucket_may_be_typed_as_a_name_or_a_uri(text: str, expected: str) -> None:
    assert normalise_bucket(text) == expected


@pytest.mark.parametrize(
    "text,problem",
    [
        ("", aws.S3_EMPTY),
        (None, aws.S3_EMPTY),
        (" s3:// ", aws.S3_EMPTY),
        ("s3://my-bucket/folder", aws.S3_HAS_FOLDER),
        ("my-bucket/folder/", aws.S3_HAS_FOLDER),
        ("My_Bucket", aws.S3_BAD_BUCKET),
        ("ab", aws.S3_BAD_BUCKET),
    ],
)
def test_a_bucket_that_is_empty_a_path_or_misnamed_is_refused(text: str | None, problem: str) -> None:
    with pytest.raises(S3UriError) as caught:
        normalise_bucket(text, hint="Set CARMATCH_BATCH_BUCKET.")
    error = caught.value
    assert (error.kind, error.field) == (problem, "bucket")
    assert str(error).startswith("S3 bucket ")
    assert str(error).endswith("Set CARMATCH_BATCH_BUCKET.") == (problem == aws.S3_EMPTY)


def test_a_misnamed_bucket_inside_a_uri_is_shown_as_typed() -> None:
    with pytest.raises(S3UriError, match="names bucket 'My_Bucket'") as caught:
        parse_s3_uri(" s3://My_Bucket/key ")
    assert caught.value.value == " s3://My_Bucket/key "


@pytest.mark.parametrize(
    "text,expected",
    [("", ""), (None, ""), ("  ", ""), ("/", ""), ("batches", "batches"), (" /a/b/ ", "a/b")],
)
def test_a_prefix_loses_its_surrounding_slashes_and_whitespace(text: str | None, expected: str) -> None:
    assert normalise_prefix(text) == expected


def _calls_boto3_factory(path: Path) -> bool:
    """True when the module calls boto3.client / boto3.Session / boto3.resource (or imports them)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "boto3":
            if node.attr in ("client", "Session", "resource", "session"):
                return True
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("boto3"):
            return True
    return False


def test_aws_clients_are_made_only_by_the_factory() -> None:
    sources = [*ROOT.joinpath("carmatch").rglob("*.py"), *ROOT.joinpath("admin").rglob("*.py"), ROOT / "app.py"]
    makers = sorted(str(p.relative_to(ROOT)) for p in sources if _calls_boto3_factory(p))
    assert makers == ["carmatch/aws.py"]
