"""Training data: image–caption pairs of the training set, with their split, and datasets over them.

Which images are training data and which split each one is in is decided once, in
:mod:`carmatch.dataset.training_set`; this module turns that into pairs. A run keeps a snapshot of
its pairs (``pairs.jsonl``) so ``--resume`` and SageMaker read exactly the same data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carmatch.atomic import atomic_open
from carmatch.dataset import training_set
from carmatch.dataset.training_set import SPLITS, SplitFractions, split_name
from carmatch.errors import InvalidInputError
from carmatch.locations import missing_files_problem
from carmatch.training.attributes import Attributes, pair_attributes
from carmatch.training.loading import draft_side, read_training_image
from carmatch.training.views import CaptionViews, hard_negative_order

if TYPE_CHECKING:
    from carmatch.catalog import Catalog

log = logging.getLogger(__name__)

MIN_TRAIN_PAIRS = 4
MIN_EVAL_PAIRS = 2
# pairs.jsonl, summary.json and the split hash in checkpoints keep the name runs have always written,
# so earlier runs still load and resume.
ON_DISK_SPLIT_NAMES = {"validation": "val"}


@dataclass(frozen=True)
class Pair:
    """One training example: an image (by content hash and file) and the caption describing it."""

    image_id: str
    path: str
    caption: str
    split: str = "train"  # one of training_set.SPLITS
    attributes: Attributes = ()  # the image's approved attributes (catalog ATTRIBUTE_COLUMNS), sorted by key


def on_disk_split(split: str) -> str:
    """The name a split is written under in pairs.jsonl and summary.json."""
    return ON_DISK_SPLIT_NAMES.get(split, split)


def catalog_pairs(
    catalog: Catalog, val_fraction: float | None = None, test_fraction: float | None = None
) -> tuple[list[Pair], str]:
    """The training set as pairs with their split; returns (pairs, source).

    The split is the collection's unless fractions are given; ``source`` is ``approved``, or
    ``unreviewed`` while nothing is approved yet (see training_set).
    """
    fractions = training_set.requested_split(catalog, val_fraction, test_fraction)
    chosen = training_set.training_set(catalog, fractions=fractions)
    pairs = [
        Pair(r.id, r.path, " ".join(str(r.caption).split()), chosen.split(r.id), pair_attributes(r.attributes))
        for r in training_set.iter_records(catalog, chosen)
    ]
    if not pairs:
        raise InvalidInputError(
            "No captioned images to train on: caption images (Dataset tab or `.venv/bin/carmatch caption live`) "
            "and approve the good captions in the Dataset tab first."
        )
    return pairs, chosen.source


def run_pairs(
    catalog: Catalog, val_fraction: float, test_fraction: float, batch_size: int | None = None
) -> tuple[list[Pair], str]:
    """A training run's pairs, checked; the run's fractions become the collection's split.

    Pairs whose image file is missing are left out with a warning that counts them and says how to
    fix it (a moved folder: ``carmatch relocate``); a split too small without them says so too.
    """
    pairs, source = catalog_pairs(catalog, val_fraction, test_fraction)
    missing = [(p.image_id, p.path) for p in pairs if not os.path.isfile(p.path)]
    if missing:
        log.warning("Training leaves out %d pair(s): %s", len(missing), missing_files_problem(missing))
        gone = {image_id for image_id, _ in missing}
        pairs = [p for p in pairs if p.image_id not in gone]
    try:
        check_split(pairs, batch_size)
    except InvalidInputError as exc:
        if missing:
            raise exc.rephrased(hint=missing_files_problem(missing)) from exc
        raise
    training_set.set_collection_split(catalog, SplitFractions(val_fraction, test_fraction))
    return pairs, source


def split_counts(pairs: Iterable[Pair]) -> dict[str, int]:
    """How many pairs each split holds."""
    counts = dict.fromkeys(SPLITS, 0)
    for pair in pairs:
        counts[pair.split] += 1
    return counts


def dataset_summary(catalog: Catalog) -> dict[str, Any]:
    """Counts for the Training tab: pairs by split, how many approved, which source would be used."""
    approved = catalog.count_captioned(("approved",))
    try:
        pairs, source = catalog_pairs(catalog)
    except InvalidInputError:
        pairs, source = [], "none"
    return {"pairs": len(pairs), "approved": approved, "source": source, **split_counts(pairs)}


def check_split(pairs: Sequence[Pair], batch_size: int | None = None) -> dict[str, int]:
    """Refuse a split too small to train and evaluate on; returns counts by split."""
    counts = split_counts(pairs)
    train, validation, test = counts["train"], counts["validation"], counts["test"]
    if train < MIN_TRAIN_PAIRS or validation < MIN_EVAL_PAIRS or test < MIN_EVAL_PAIRS:
        raise InvalidInputError(
            f"Too few pairs to split into train/validation/test: {len(pairs)} pairs gave "
            f"{train}/{validation}/{test}; need at least {MIN_TRAIN_PAIRS} to train on and "
            f"{MIN_EVAL_PAIRS} each to validate and test. Caption and approve more images."
        )
    if batch_size is not None and batch_size > train:
        raise InvalidInputError(
            field="batch_size",
            value=batch_size,
            limit=(2, train),
            label="Batch size",
            reason=f"{batch_size} is larger than the {train} training pairs; use {max(2, min(32, train))} or fewer",
        )
    return counts


def split_hash(pairs: Iterable[Pair]) -> str:
    """A hash of which image, caption and split each pair has: equal hashes mean equal data."""
    digest = hashlib.blake2b(digest_size=12)
    for pair in sorted(pairs, key=lambda p: p.image_id):
        digest.update(f"{pair.image_id}\t{on_disk_split(pair.split)}\t{pair.caption}\n".encode())
        if pair.attributes:  # runs from before attributes keep their hash
            digest.update(json.dumps(pair.attributes).encode())
    return digest.hexdigest()


def pair_record(pair: Pair, path: str) -> dict[str, Any]:
    """One pairs.jsonl line: the pair with ``path`` as its file (attributes as an object, left out when none)."""
    record: dict[str, Any] = {**asdict(pair), "path": path, "split": on_disk_split(pair.split)}
    record.pop("attributes")
    if pair.attributes:
        record["attributes"] = dict(pair.attributes)
    return record


def write_pairs_jsonl(pairs: Sequence[Pair], path: Path, relative_to: Path | None = None) -> None:
    """Write pairs as JSONL atomically (image paths made relative to ``relative_to`` when given)."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        for pair in pairs:
            image_path = os.path.relpath(pair.path, relative_to) if relative_to is not None else pair.path
            fh.write(json.dumps(pair_record(pair, image_path)) + "\n")


def read_pairs_jsonl(path: Path, images_root: Path | None = None) -> list[Pair]:
    """Read pairs written by :func:`write_pairs_jsonl` (relative paths resolved under ``images_root``)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
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
            split = split_name(str(data.get("split", "train")))
            raw_attributes = data.get("attributes") or {}
            if not isinstance(raw_attributes, dict):
                raise TypeError(f"attributes must be an object, not {type(raw_attributes).__name__}")
            attributes = pair_attributes(raw_attributes)
            pairs.append(Pair(data["image_id"], str(image_path), data["caption"], split, attributes))
        except (ValueError, KeyError, TypeError, InvalidInputError, RecursionError) as exc:  # deep JSON too
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

    def decode_side(self, image_side: int | None) -> int | None:
        """The short side an image may be decoded at so that every crop still covers ``image_side``."""
        return draft_side(image_side, self.aug.crop_scale[0], self.aug.crop_ratio[1])

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
    """Map-style dataset over pairs; items are addressed by (index, epoch) so augmentation is seeded.

    Captions are tokenized once, here; the texts of attribute views once each, when first drawn. With
    ``image_side`` (the model's input side) JPEGs are decoded at the smallest scale that still covers it.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        transform: Callable,
        tokenizer: Any,
        train_transform: TrainTransform | None,
        seed: int = 0,
        max_pixels: int = 64_000_000,
        max_bytes: int = 50 * 1024 * 1024,
        views: CaptionViews | None = None,
        image_side: int | None = None,
    ):
        self.pairs = list(pairs)
        self.transform = transform
        self.tokenizer = tokenizer
        self.train_transform = train_transform
        self.seed = seed
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
        self.views = views  # None: every image is paired with its full caption
        self.unreadable: set[str] = set()  # files already warned about (each worker process keeps its own)
        self.eval_side = draft_side(image_side)
        self.train_side = train_transform.decode_side(image_side) if train_transform is not None else None
        self.caption_tokens = tokenizer([p.caption for p in self.pairs]) if self.pairs else []
        self.view_tokens: dict[str, Any] = {}  # attribute-view text → its tokens (each process keeps its own)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, Any]:
        """The (image tensor, tokens) of a pair; an unreadable image is skipped with a warning for the next one."""
        from carmatch.errors import ImageError

        index, epoch = key if isinstance(key, tuple) else (key, -1)
        for offset in range(len(self.pairs)):
            candidate = (index + offset) % len(self.pairs)
            try:
                return self._item(candidate, epoch)
            except ImageError as exc:
                if self.pairs[candidate].path not in self.unreadable:
                    self.unreadable.add(self.pairs[candidate].path)
                    log.warning("Training skips an image it cannot read (%s); the next pair takes its place", exc)
        raise InvalidInputError(f"None of the {len(self.pairs)} training images can be read; see the warnings above.")

    def _item(self, index: int, epoch: int) -> tuple[Any, Any]:
        pair = self.pairs[index]
        if self.train_transform is not None and epoch >= 0:
            image = read_training_image(pair.path, self.train_side, self.max_pixels, self.max_bytes)
            tensor = self.train_transform(image, sample_seed(self.seed, epoch, index))
        else:
            tensor = self.transform(read_training_image(pair.path, self.eval_side, self.max_pixels, self.max_bytes))
        return tensor, self._tokens(index, epoch)

    def _tokens(self, index: int, epoch: int) -> Any:
        """The tokens of the text image ``index`` is paired with in ``epoch``."""
        view = self.views.view(index, epoch) if self.views is not None else None
        if view is None or view.asks is None:
            return self.caption_tokens[index]
        if view.text not in self.view_tokens:
            self.view_tokens[view.text] = self.tokenizer([view.text])[0]
        return self.view_tokens[view.text]

    def batches(self, batch_size: int, epoch: int, partners: int = 0) -> list[list[tuple[int, int]]]:
        """The epoch's batches (:func:`epoch_batches`), with hard negatives side by side when pairs have attributes."""
        words = self.views.words if self.views is not None else ()
        return epoch_batches(len(self.pairs), batch_size, self.seed, epoch, words, partners)

    def positives(self, keys: Sequence[tuple[int, int]]) -> Any:
        """Which text of a batch describes which image (CaptionViews.positives); None: each only its own."""
        return self.views.positives(keys) if self.views is not None else None


def epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, words: Sequence[Mapping[str, str]] = (), partners: int = 0
) -> list[list[tuple[int, int]]]:
    """The epoch's shuffled batches of (index, epoch) keys; a last batch under 2 pairs is dropped.

    With attribute ``words`` per pair and ``partners`` > 0, each image is followed by up to that many
    images differing from it in one attribute (hard negatives in the same batch).
    """
    order = list(range(n))
    random.Random(sample_seed(seed, epoch, -1)).shuffle(order)
    if words and partners > 0:
        order = hard_negative_order(order, words, partners)
    batches = [[(i, epoch) for i in order[s : s + batch_size]] for s in range(0, n, batch_size)]
    return [b for b in batches if len(b) >= 2]
