"""Titan Multimodal Embeddings fine-tuning data: ``{"image-ref": "s3://…", "caption": "…"}`` JSONL.

Checked against Titan's documented limits (Bedrock user guide, "Prepare the datasets"): captions
at most 2,560 characters and 128 tokens, images PNG/JPEG of at most 5 MB with sides 128–4,096 px
and aspect ratio 0.25–4, 1,000–500,000 training and 8–50,000 validation records. Images that break
a limit are converted when possible, else skipped with the reason. The records follow the one split
of the collection (carmatch.dataset.training_set): it depends on each image's content hash only, so
it is the same on every export, and an image of the test split never goes into a Titan file.
Uploading an export to S3 is :mod:`carmatch.dataset.titan_upload`.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from PIL import Image, UnidentifiedImageError

from carmatch.aws import s3_prefix_uri
from carmatch.catalog import Catalog, ImageRecord
from carmatch.dataset.export import FALLBACK_WARNING, AtomicText, ExportReport, write_bytes_atomic
from carmatch.dataset.training_set import TrainingSet, count_records, iter_records, split_bucket, training_set
from carmatch.errors import InvalidInputError
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
