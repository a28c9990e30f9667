"""Titan Multimodal Embeddings fine-tuning data: ``{"image-ref": "s3://…", "caption": "…"}`` JSONL.

Checked against Titan's documented limits (Bedrock user guide, "Prepare the datasets"): captions
at most 2,560 characters and 128 tokens, images PNG/JPEG of at most 5 MB with sides 128–2,048 px
and aspect ratio 0.25–4, 1,000–500,000 training and 8–50,000 validation records. Images that break
a limit are converted when possible, else skipped with the reason. The records follow the one split
of the collection (carmatch.dataset.training_set): it depends on each image's content hash only, so
it is the same on every export, and an image of the test split never goes into a Titan file.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from PIL import Image, UnidentifiedImageError

from carmatch.aws import UPLOAD_CONCURRENCY, Upload, explain_aws_error, parse_s3_uri, s3_prefix_uri, upload_files
from carmatch.catalog import Catalog, ImageRecord
from carmatch.dataset.export import FALLBACK_WARNING, AtomicText, ExportReport, write_bytes_atomic
from carmatch.dataset.training_set import TrainingSet, count_records, iter_records, split_bucket, training_set
from carmatch.errors import InvalidInputError, Problem
from carmatch.locations import s3_uri_of
from carmatch.progress import Progress, no_progress

log = logging.getLogger(__name__)


TITAN_MAX_CAPTION_CHARS = 2_560
TITAN_MAX_CAPTION_TOKENS = 128
TITAN_MAX_IMAGE_BYTES = 5 * 1024 * 1024
TITAN_MIN_SIDE_PX = 128
TITAN_MAX_SIDE_PX = 4_096  # Titan customization data: images up to 4096 px a side (aspect 1:4-4:1, 5 MB)
TITAN_MIN_ASPECT = 0.25
TITAN_MAX_ASPECT = 4.0
TITAN_MIN_TRAIN = 1_000
TITAN_MAX_TRAIN = 500_000
TITAN_MIN_VALIDATION = 8
TITAN_MAX_VALIDATION = 50_000
MD5_METADATA = "carmatch-md5"  # S3 user metadata holding a file's MD5 (multipart ETags are not MD5s)
CONTENT_TYPES = {".jsonl": "application/jsonl", ".png": "image/png"}  # anything else uploaded is a JPEG
TITAN_FORMATS = {"PNG": "png", "JPEG": "jpg"}


_TOKEN_PIECES = re.compile(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]")


def approx_tokens(text: str) -> int:
    """A deliberately high estimate of Titan's token count (its tokenizer is not public).

    Every letter run counts one token per 3 letters (real subword tokenizers average ~4 characters
    a token in English), every digit run one per 2 digits, every other symbol one token, so a
    caption that passes here is very likely under the real limit.
    """
    total = 0
    for piece in _TOKEN_PIECES.findall(text):
        if piece[0].isalpha():
            total += math.ceil(len(piece) / 3)
        elif piece[0].isdigit():
            total += math.ceil(len(piece) / 2)
        else:
            total += 1
    return total


def titan_caption_problem(caption: str) -> str | None:
    """Why a caption breaks Titan's limits, or None when it fits."""
    if len(caption) > TITAN_MAX_CAPTION_CHARS:
        return f"caption is {len(caption)} characters, over Titan's {TITAN_MAX_CAPTION_CHARS}"
    tokens = approx_tokens(caption)
    if tokens > TITAN_MAX_CAPTION_TOKENS:
        return f"caption is about {tokens} tokens (conservative estimate), over Titan's {TITAN_MAX_CAPTION_TOKENS}"
    return None


@dataclass
class TitanImage:
    """An image ready for Titan: the bytes to upload come from ``local`` (the original or a converted copy)."""

    image_id: str
    local: Path
    ext: str
    converted: str | None = None  # what was done to it, when anything


def prepare_titan_image(record: ImageRecord, images_dir: Path) -> TitanImage:
    """Check an image against Titan's limits; convert it into ``images_dir`` when needed (else InvalidInputError)."""
    path = Path(record.path)
    try:
        size = path.stat().st_size
        with Image.open(path) as img:
            fmt = img.format or "?"
            width, height = img.size
            aspect = width / height if height else 0.0
            if not TITAN_MIN_ASPECT <= aspect <= TITAN_MAX_ASPECT:
                raise InvalidInputError(
                    f"aspect ratio {aspect:.2f} is outside Titan's {TITAN_MIN_ASPECT}-{TITAN_MAX_ASPECT:g}"
                )
            if min(width, height) < TITAN_MIN_SIDE_PX:
                raise InvalidInputError(f"{width}x{height} px: a side is under Titan's {TITAN_MIN_SIDE_PX} px minimum")
            reasons = []
            if fmt not in TITAN_FORMATS:
                reasons.append(f"{fmt} to PNG/JPEG")
            if max(width, height) > TITAN_MAX_SIDE_PX:
                reasons.append(f"downscaled from {width}x{height}")
            if size > TITAN_MAX_IMAGE_BYTES:
                reasons.append(f"re-encoded from {size / 1e6:.1f} MB")
            if not reasons:
                return TitanImage(record.id, path, TITAN_FORMATS[fmt])
            img.load()
            data, ext = _convert_for_titan(img)
    except FileNotFoundError as exc:
        raise InvalidInputError(f"image file is missing ({path})") from exc
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise InvalidInputError(f"image cannot be read ({exc})") from exc
    target = images_dir / f"{record.id}.{ext}"
    write_bytes_atomic(target, data)
    return TitanImage(record.id, target, ext, ", ".join(reasons))


def _convert_for_titan(img: Image.Image) -> tuple[bytes, str]:
    """PNG when the image has transparency or is small enough, else JPEG; within size and side limits."""
    work = img.copy()
    if max(work.size) > TITAN_MAX_SIDE_PX:
        work.thumbnail((TITAN_MAX_SIDE_PX, TITAN_MAX_SIDE_PX), Image.Resampling.LANCZOS)
    has_alpha = work.mode in ("RGBA", "LA") or (work.mode == "P" and "transparency" in work.info)
    if has_alpha:
        buf = io.BytesIO()
        work.convert("RGBA").save(buf, format="PNG", optimize=True)
        if buf.tell() <= TITAN_MAX_IMAGE_BYTES:
            return buf.getvalue(), "png"
    rgb = work.convert("RGB")
    for quality in (95, 90, 85, 75, 65):
        buf = io.BytesIO()
        rgb.save(buf, format="JPEG", quality=quality)
        if buf.tell() <= TITAN_MAX_IMAGE_BYTES:
            return buf.getvalue(), "jpg"
    while True:  # still too big: shrink until it fits (aspect is within 0.25-4, so sides stay >= 128)
        rgb = rgb.resize((max(TITAN_MIN_SIDE_PX, rgb.width * 3 // 4), max(TITAN_MIN_SIDE_PX, rgb.height * 3 // 4)))
        buf = io.BytesIO()
        rgb.save(buf, format="JPEG", quality=85)
        if buf.tell() <= TITAN_MAX_IMAGE_BYTES or min(rgb.size) <= TITAN_MIN_SIDE_PX:
            return buf.getvalue(), "jpg"


def normalise_s3_prefix(prefix: str | None) -> str:
    """``s3://bucket/prefix/`` with its trailing slash; InvalidInputError when it is not an S3 URI."""
    if not prefix or not prefix.strip():
        raise InvalidInputError(
            "Titan export needs an S3 prefix for its image-refs, e.g. --s3-prefix s3://my-bucket/carmatch/titan/"
        )
    return s3_prefix_uri(prefix, label="The Titan export's prefix", example="s3://my-bucket/carmatch/titan/")


class _Entry(NamedTuple):
    """One image going to Titan: its split, its hash bucket (the order of top-ups and caps), its line."""

    split: str
    bucket: float
    image_id: str
    line: dict[str, str]
    image: TitanImage


def export_titan(
    catalog: Catalog,
    out_dir: Path,
    s3_prefix: str,
    include_unreviewed: bool = False,
    validation_fraction: float | None = None,
    progress: Progress = no_progress,
) -> ExportReport:
    """Write ``train.jsonl``, ``validation.jsonl`` and ``manifest.json`` (local files to upload) in ``out_dir``.

    The records follow the collection's split (carmatch.dataset.training_set): the test split is
    never exported; ``validation.jsonl`` is the validation split, topped up from the train split
    (lowest hash buckets first) to Titan's minimum and, when given, to ``validation_fraction`` of
    the records; ``train.jsonl`` is the rest of the train split. Image-refs are ``<s3_prefix><image id>.<ext>``,
    or an image's own S3 URI when it came from S3 and needs no conversion (not uploaded again). Images Titan
    would refuse are converted into ``out_dir/images`` when possible, else skipped with the reason. Record counts
    outside Titan's limits give warnings: the files are written anyway, but Bedrock refuses a job below the minimum.
    """
    prefix = normalise_s3_prefix(s3_prefix)
    if validation_fraction is not None and not 0.0 < validation_fraction < 1.0:
        raise InvalidInputError(
            field="validation_fraction",
            value=validation_fraction,
            limit=(0, 1),
            reason=f"must be between 0 and 1 (got {validation_fraction})",
            label="the validation fraction",
        )
    out_dir = Path(out_dir)
    report = ExportReport()
    chosen = training_set(catalog, include_unreviewed)
    entries = _check_images(catalog, chosen, prefix, out_dir / "images", report, progress)
    if chosen.source == "unreviewed" and entries:
        report.warnings.append(FALLBACK_WARNING)
    train, validation = _split_entries(entries, validation_fraction, report, include_unreviewed)
    for name, part in (("train.jsonl", train), ("validation.jsonl", validation)):
        with AtomicText(out_dir / name) as fh:
            for entry in part:
                fh.write(json.dumps(entry.line, ensure_ascii=False) + "\n")
        report.files.append(out_dir / name)
    report.train, report.validation = len(train), len(validation)
    report.records = report.train + report.validation
    _write_manifest(out_dir, prefix, train + validation, report)
    log.info("Titan export warnings (the report's summary shows them to the user): %s", report.warnings)
    return report


def _check_images(
    catalog: Catalog, chosen: TrainingSet, prefix: str, images_dir: Path, report: ExportReport, progress: Progress
) -> list[_Entry]:
    """Check (and convert) the images of the train and validation splits; count the held-out test split."""
    total = count_records(catalog, chosen)
    entries: list[_Entry] = []
    for n, record in enumerate(iter_records(catalog, chosen), 1):
        split = chosen.split(record.id)
        if split == "test":
            report.held_out += 1
        else:
            try:
                entry = _entry(record, split, prefix, images_dir, catalog.path.parent)  # the home holds the catalog
            except InvalidInputError as exc:
                report.skipped.append((record.id, str(exc)))
            else:
                entries.append(entry)
                if entry.image.converted:
                    report.converted += 1
        if n % 100 == 0 or n == total:
            progress(n, total, "checking images")
    return entries


def _entry(record: ImageRecord, split: str, prefix: str, images_dir: Path, home: Path) -> _Entry:
    """The Titan line of one image; InvalidInputError with the reason when Titan would refuse it."""
    caption = " ".join((record.caption or "").split())
    problem = titan_caption_problem(caption)
    if problem is not None:
        raise InvalidInputError(problem)
    image = prepare_titan_image(record, images_dir)
    in_place = None if image.converted else s3_uri_of(record.path, home)  # ingested from S3: Titan reads it there
    line = {"image-ref": in_place or f"{prefix}{record.id}.{image.ext}", "caption": caption}
    return _Entry(split, split_bucket(record.id), record.id, line, image)


def _write_manifest(out_dir: Path, prefix: str, entries: list[_Entry], report: ExportReport) -> None:
    """``manifest.json``: which local file goes to which S3 key, what was skipped and held out, warnings."""
    manifest = {
        "s3_prefix": prefix,
        "train": f"{prefix}train.jsonl",
        "validation": f"{prefix}validation.jsonl",
        "images": [
            {"image_ref": e.line["image-ref"], "local": str(e.image.local), "converted": e.image.converted}
            for e in sorted(entries, key=lambda e: e.image_id)
            if e.line["image-ref"] == f"{prefix}{e.image_id}.{e.image.ext}"  # not one referenced where it is in S3
        ],
        "skipped": [{"id": i, "reason": r} for i, r in report.skipped],
        "held_out_test": report.held_out,
        "warnings": report.warnings,
        "token_count_note": "caption tokens are a conservative estimate; Titan's tokenizer is not public",
    }
    write_bytes_atomic(out_dir / "manifest.json", json.dumps(manifest, indent=1).encode())
    report.files.append(out_dir / "manifest.json")


def _split_entries(
    entries: list[_Entry], fraction: float | None, report: ExportReport, include_unreviewed: bool = False
) -> tuple[list[_Entry], list[_Entry]]:
    """Train and validation records: the splits, validation topped up from train's lowest buckets; warn on limits."""
    entries.sort(key=lambda e: (e.bucket, e.image_id))
    validation = [e for e in entries if e.split == "validation"]
    train = [e for e in entries if e.split == "train"]
    wanted = TITAN_MIN_VALIDATION if fraction is None else max(TITAN_MIN_VALIDATION, math.ceil(fraction * len(entries)))
    needed = wanted - len(validation)
    if needed > 0 and len(train) > needed:
        validation, train = validation + train[:needed], train[needed:]
    if len(validation) > TITAN_MAX_VALIDATION:
        train = sorted(train + validation[TITAN_MAX_VALIDATION:], key=lambda e: (e.bucket, e.image_id))
        validation = validation[:TITAN_MAX_VALIDATION]
    if len(train) > TITAN_MAX_TRAIN:
        report.warnings.append(
            f"{len(train)} training records is over Titan's maximum of {TITAN_MAX_TRAIN}; "
            f"only the first {TITAN_MAX_TRAIN} (by hash) were written."
        )
        train = train[:TITAN_MAX_TRAIN]
    if len(train) < TITAN_MIN_TRAIN:
        report.warnings.append(
            f"Only {len(train)} training records: Titan fine-tuning needs at least {TITAN_MIN_TRAIN}, "
            "so Bedrock will refuse this dataset. Approve more captions"
            + ("." if include_unreviewed else " (or use --include-unreviewed).")
        )
    if len(validation) < TITAN_MIN_VALIDATION:
        report.warnings.append(
            f"Only {len(validation)} validation records: Titan needs at least {TITAN_MIN_VALIDATION}, "
            "so Bedrock will refuse this dataset."
        )
    return train, validation


# -- upload ----------------------------------------------------------------------------------
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
