"""Training data: image–caption pairs from the catalog, a deterministic split by image hash, datasets.

The split depends only on an image's content hash (its id), so an image always lands in the same
split: the test split never changes between runs and before/after numbers compare. A run keeps
a snapshot of its pairs (``pairs.jsonl``) so ``--resume`` and SageMaker read exactly the same data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carmatch.atomic import atomic_open
from carmatch.errors import InvalidInputError

if TYPE_CHECKING:
    from carmatch.catalog import Catalog

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SPLIT_SALT = "carmatch-split-v1"
MIN_TRAIN_PAIRS = 4
MIN_EVAL_PAIRS = 2


@dataclass(frozen=True)
class Pair:
    """One training example: an image (by content hash and file) and the caption describing it."""

    image_id: str
    path: str
    caption: str
    split: str = "train"


def split_of(image_id: str, val_fraction: float = 0.1, test_fraction: float = 0.1) -> str:
    """The split an image belongs to, from its hash alone (stable across runs and collection growth)."""
    bucket = int(hashlib.sha256(f"{SPLIT_SALT}:{image_id}".encode()).hexdigest()[:12], 16) / float(16**12)
    if bucket < test_fraction:
        return "test"
    if bucket < test_fraction + val_fraction:
        return "val"
    return "train"


def catalog_pairs(catalog: Catalog, val_fraction: float = 0.1, test_fraction: float = 0.1) -> tuple[list[Pair], str]:
    """Approved captioned pairs (else all non-rejected captioned ones), split; returns (pairs, source)."""
    base = (
        "SELECT id, path, caption FROM images WHERE deleted_at IS NULL AND caption IS NOT NULL AND TRIM(caption) != ''"
    )
    rows = catalog.execute(base + " AND review_state='approved' ORDER BY id")
    source = "approved"
    if not rows:
        rows = catalog.execute(base + " AND review_state != 'rejected' ORDER BY id")
        source = "unreviewed"
        if rows:
            log.warning("No approved captions yet; training on %d unreviewed captions", len(rows))
    if not rows:
        raise InvalidInputError(
            "No captioned images to train on: caption images (Dataset tab or `python -m admin caption live`) "
            "and approve the good captions in the Dataset tab first."
        )
    pairs = [
        Pair(r["id"], r["path"], " ".join(str(r["caption"]).split()), split_of(r["id"], val_fraction, test_fraction))
        for r in rows
    ]
    return pairs, source


def dataset_summary(catalog: Catalog, val_fraction: float = 0.1, test_fraction: float = 0.1) -> dict[str, Any]:
    """Counts for the Training tab: pairs by split, how many approved, which source would be used."""
    approved = int(
        catalog.execute(
            "SELECT COUNT(*) FROM images WHERE deleted_at IS NULL AND caption IS NOT NULL AND review_state='approved'"
        )[0][0]
    )
    try:
        pairs, source = catalog_pairs(catalog, val_fraction, test_fraction)
    except InvalidInputError:
        pairs, source = [], "none"
    counts = {name: sum(p.split == name for p in pairs) for name in SPLITS}
    return {"pairs": len(pairs), "approved": approved, "source": source, **counts}


def check_split(pairs: Sequence[Pair], batch_size: int | None = None) -> dict[str, int]:
    """Refuse a split too small to train and evaluate on; returns counts by split."""
    counts = {name: sum(p.split == name for p in pairs) for name in SPLITS}
    if counts["train"] < MIN_TRAIN_PAIRS or counts["val"] < MIN_EVAL_PAIRS or counts["test"] < MIN_EVAL_PAIRS:
        raise InvalidInputError(
            f"Too few pairs to split into train/validation/test: {len(pairs)} pairs gave "
            f"{counts['train']}/{counts['val']}/{counts['test']}; need at least {MIN_TRAIN_PAIRS} to train on and "
            f"{MIN_EVAL_PAIRS} each to validate and test. Caption and approve more images."
        )
    if batch_size is not None and batch_size > counts["train"]:
        raise InvalidInputError(
            f"Batch size {batch_size} is larger than the {counts['train']} training pairs; "
            f"use --batch-size {max(2, min(32, counts['train']))} or fewer."
        )
    return counts


def split_hash(pairs: Iterable[Pair]) -> str:
    """A hash of which image, caption and split each pair has: equal hashes mean equal data."""
    digest = hashlib.blake2b(digest_size=12)
    for pair in sorted(pairs, key=lambda p: p.image_id):
        digest.update(f"{pair.image_id}\t{pair.split}\t{pair.caption}\n".encode())
    return digest.hexdigest()


def write_pairs_jsonl(pairs: Sequence[Pair], path: Path, relative_to: Path | None = None) -> None:
    """Write pairs as JSONL atomically (image paths made relative to ``relative_to`` when given)."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        for pair in pairs:
            record = asdict(pair)
            if relative_to is not None:
                record["path"] = os.path.relpath(pair.path, relative_to)
            fh.write(json.dumps(record) + "\n")


def read_pairs_jsonl(path: Path, images_root: Path | None = None) -> list[Pair]:
    """Read pairs written by :func:`write_pairs_jsonl` (relative paths resolved under ``images_root``)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInputError(f"Cannot read the pairs file {path}: {exc}") from exc
    pairs = []
    root = images_root or path.parent
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            image_path = Path(data["path"])
            if not image_path.is_absolute():
                image_path = root / image_path
            pairs.append(Pair(data["image_id"], str(image_path), data["caption"], data.get("split", "train")))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInputError(f"{path}:{number}: not a pair record ({exc})") from exc
    return pairs


# -- images -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AugmentConfig:
    """Light training augmentation: a random resized crop, colour jitter off by default."""

    crop_scale: tuple[float, float] = (0.8, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    # Colour jitter is OFF by default: people search for colours ("a red pickup"), and captions name
    # them, so shifting hue or saturation would teach the model that a red car may look orange.
    # Brightness/contrast only (never hue) when a user turns it on.
    color_jitter: float = 0.0


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A per-sample augmentation seed: the same (seed, epoch, index) gives the same crop on resume."""
    return int(hashlib.blake2b(f"{seed}:{epoch}:{index}".encode(), digest_size=8).hexdigest(), 16)


def random_crop_box(width: int, height: int, rng: random.Random, aug: AugmentConfig) -> tuple[int, int, int, int]:
    """Pick a (top, left, h, w) crop covering ``crop_scale`` of the area at an aspect in ``crop_ratio``."""
    area = width * height
    log_ratio = (math.log(aug.crop_ratio[0]), math.log(aug.crop_ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*aug.crop_scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    return 0, 0, height, width


class TrainTransform:
    """The model's preprocessing preceded by a seeded random resized crop (and optional mild jitter)."""

    def __init__(self, preprocess: Callable, aug: AugmentConfig):
        self.preprocess = preprocess
        self.aug = aug

    def __call__(self, image: Any, seed: int) -> Any:
        from PIL import ImageEnhance

        rng = random.Random(seed)
        top, left, h, w = random_crop_box(image.width, image.height, rng, self.aug)
        image = image.crop((left, top, left + w, top + h))
        if self.aug.color_jitter > 0:
            j = self.aug.color_jitter
            image = ImageEnhance.Brightness(image).enhance(rng.uniform(1 - j, 1 + j))
            image = ImageEnhance.Contrast(image).enhance(rng.uniform(1 - j, 1 + j))
        return self.preprocess(image)


class PairDataset:
    """Map-style dataset over pairs; items are addressed by (index, epoch) so augmentation is seeded."""

    def __init__(
        self,
        pairs: Sequence[Pair],
        transform: Callable,
        tokenizer: Any,
        train_transform: TrainTransform | None,
        seed: int = 0,
        max_pixels: int = 64_000_000,
        max_bytes: int = 50 * 1024 * 1024,
    ):
        self.pairs = list(pairs)
        self.transform = transform
        self.tokenizer = tokenizer
        self.train_transform = train_transform
        self.seed = seed
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, Any]:
        from carmatch.images import load_image

        index, epoch = key if isinstance(key, tuple) else (key, -1)
        pair = self.pairs[index]
        image = load_image(Path(pair.path), self.max_pixels, self.max_bytes).image
        if self.train_transform is not None and epoch >= 0:
            tensor = self.train_transform(image, sample_seed(self.seed, epoch, index))
        else:
            tensor = self.transform(image)
        return tensor, self.tokenizer([pair.caption])[0]


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[tuple[int, int]]]:
    """The epoch's shuffled batches of (index, epoch) keys; a last batch under 2 pairs is dropped."""
    order = list(range(n))
    random.Random(sample_seed(seed, epoch, -1)).shuffle(order)
    batches = [[(i, epoch) for i in order[s : s + batch_size]] for s in range(0, n, batch_size)]
    return [b for b in batches if len(b) >= 2]
