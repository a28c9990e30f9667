"""Uploading a Titan export to S3: the images and JSONL its manifest names, skipping what S3 already holds.

Objects are compared by size and MD5 (kept in the object's metadata, since a multipart upload's ETag is
not one), and an export Bedrock would refuse (too few records) is refused before anything is sent.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carmatch.aws import UPLOAD_CONCURRENCY, Upload, explain_aws_error, parse_s3_uri, upload_files
from carmatch.dataset.export_titan import TITAN_MIN_TRAIN, TITAN_MIN_VALIDATION
from carmatch.errors import InvalidInputError, Problem
from carmatch.progress import Progress, no_progress

CONTENT_TYPES = {".jsonl": "application/jsonl", ".png": "image/png"}  # anything else uploaded is a JPEG
MD5_METADATA = "carmatch-md5"  # S3 user metadata holding a file's MD5 (multipart ETags are not MD5s)


@dataclass
class UploadReport:
    """What an S3 upload copied and skipped."""

    uploaded: int = 0
    present: int = 0
    uris: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the CLI and the app."""
        return f"Uploaded {self.uploaded} object(s) to S3; {self.present} already there were skipped."


def upload_titan(s3_client: Any, out_dir: Path, progress: Progress = no_progress) -> UploadReport:
    """Copy an export's images and JSONL to its S3 prefix, streamed from disk in parts; skip what is there."""
    manifest_path = Path(out_dir) / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(
            f"No readable Titan export in {out_dir} ({exc}); export with --format titan first."
        ) from exc
    _check_record_counts(Path(out_dir))  # before anything is sent
    jobs = [(Path(item["local"]), item["image_ref"], False) for item in manifest["images"]]
    jobs += [(Path(out_dir) / "train.jsonl", manifest["train"], True)]
    jobs += [(Path(out_dir) / "validation.jsonl", manifest["validation"], True)]
    report = UploadReport()

    def plan(job: tuple[Path, str, bool]) -> Upload | None:
        """The upload ``job`` needs, or None when S3 already holds the same bytes (a HeadObject)."""
        local, uri, overwrite_changed = job
        bucket, key = parse_s3_uri(uri, field="image_ref", label="The export manifest's S3 URI")
        digest = _file_md5(local)
        if _already_there(s3_client, bucket, key, digest, local.stat().st_size, compare=overwrite_changed):
            return None
        extra = {"ContentType": CONTENT_TYPES.get(Path(key).suffix, "image/jpeg"), "Metadata": {MD5_METADATA: digest}}
        return Upload(str(local), bucket, key, extra)

    try:
        with ThreadPoolExecutor(max_workers=UPLOAD_CONCURRENCY) as pool:  # the HeadObjects, many at once
            planned = list(pool.map(plan, jobs))
        uploads = [u for u in planned if u is not None]
        report.present = len(jobs) - len(uploads)
        upload_files(s3_client, uploads, progress)  # one TransferManager, many files at once, each in parts
    except Exception as exc:  # noqa: BLE001 - botocore/s3transfer errors become AwsError with advice
        if type(exc).__module__.startswith(("botocore", "boto3", "s3transfer")):
            raise explain_aws_error(exc, f"upload the Titan export in {out_dir}") from exc
        raise
    report.uploaded = len(uploads)
    report.uris = [f"s3://{u.bucket}/{u.key}" for u in uploads]
    return report


def _check_record_counts(out_dir: Path) -> None:
    """Refuse an export Bedrock would refuse: fewer training or validation records than Titan's minimum."""
    problems = []
    for name, least in (("train", TITAN_MIN_TRAIN), ("validation", TITAN_MIN_VALIDATION)):
        try:
            with (out_dir / f"{name}.jsonl").open("rb") as handle:
                count = sum(1 for line in handle if line.strip())
        except OSError as exc:
            raise InvalidInputError(f"Cannot read {name}.jsonl ({exc.strerror or exc}); export again.") from exc
        if count < least:
            problems.append(Problem(name, count, least, f"has {count} records; Titan needs at least {least}"))
    if problems:
        raise InvalidInputError(
            "This Titan export is too small for a customization job, so nothing was uploaded",
            problems=problems,
            hint="Caption more images (.venv/bin/carmatch caption ...) and export again.",
        )


def _file_md5(local: Path) -> str:
    """The hex MD5 of a file, read in chunks; InvalidInputError when it cannot be read."""
    try:
        with local.open("rb") as handle:
            return hashlib.file_digest(handle, "md5").hexdigest()
    except OSError as exc:
        raise InvalidInputError(f"Cannot read {local} for upload ({exc.strerror or exc}); export again.") from exc


def _already_there(s3_client: Any, bucket: str, key: str, digest: str, size: int, compare: bool) -> bool:
    """True when the object exists (and, with ``compare``, holds the same bytes: size and MD5 match)."""
    from botocore.exceptions import ClientError

    try:
        head = s3_client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    if not compare:
        return True  # images are named by content hash: same key, same bytes
    # A multipart upload's ETag is not the MD5 of the file, so carmatch keeps the MD5 in the metadata.
    stored = head.get("Metadata", {}).get(MD5_METADATA) or str(head.get("ETag", "")).strip('"')
    return head.get("ContentLength") == size and stored == digest
