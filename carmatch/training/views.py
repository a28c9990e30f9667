"""Caption views: what text each training step pairs an image with, and which images that text describes.

Each time an image is drawn, it is paired with one *view* of its description, chosen by a seeded
draw from the run's mix (``caption_views``, e.g. ``full,attributes`` or ``full:1,attributes:2``):
the ``full`` caption, or ``attributes``: a short description of a random subset of its phrased
attributes ("a red suv", "a photo of a suv seen from the side"). Images with no phrasable attribute
always get their caption. The same (seed, epoch, index) always gives the same view, so a resumed run
sees the same texts.

A short description fits many images: "a red car" describes every red car in the batch. So the loss
is told which images each text describes (:meth:`CaptionViews.positives`) instead of treating them
as negatives; images that differ from each other in one attribute are put side by side
(:func:`hard_negative_order`) so a batch holds a blue suv beside the red one.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import random
from collections import Counter, defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from carmatch.errors import InvalidInputError
from carmatch.training.attributes import phrasable, random_description
from carmatch.training.queries import Columns, Query

log = logging.getLogger(__name__)

VIEW_NAMES = ("full", "attributes")
DEFAULT_VIEWS = "full,attributes"
PARTNER_SCAN = 64  # how far into its bucket an image looks for a partner: keeps ordering linear


def parse_views(text: str) -> dict[str, float]:
    """``full,attributes`` or ``full:1,attributes:3`` as ``{view: weight}``; InvalidInputError otherwise."""
    mix: dict[str, float] = {}
    for part in (p.strip() for p in str(text).split(",")):
        name, _, weight = part.partition(":")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            value = -1.0
        if name.strip() not in VIEW_NAMES or not value > 0 or name.strip() in mix:
            raise InvalidInputError(
                field="caption_views",
                value=text,
                limit=VIEW_NAMES,
                reason=f"{part!r}: name each of {', '.join(VIEW_NAMES)} at most once, optionally with a "
                "positive weight (e.g. full:1,attributes:2)",
                label="--caption-views",
            )
        mix[name.strip()] = value
    return mix


@dataclass(frozen=True)
class View:
    """The text one image is paired with this time, and the attribute words it asks for (None: full caption)."""

    text: str
    asks: tuple[tuple[str, str], ...] | None


def _view_rng(seed: int, epoch: int, index: int) -> random.Random:
    digest = hashlib.blake2b(f"view:{seed}:{epoch}:{index}".encode(), digest_size=8).hexdigest()
    return random.Random(int(digest, 16))


class CaptionViews:
    """The views of a run's training pairs: seeded per (index, epoch), with the images each one describes."""

    def __init__(self, captions: Sequence[str], attributes: Sequence[Sequence[tuple[str, str]]], mix: str, seed: int):
        self.captions = [" ".join(c.split()).lower() for c in captions]
        self.raw_captions = list(captions)
        self.mix = parse_views(mix)
        self.seed = seed
        self.skipped: Counter[str] = Counter()
        self.words = [phrasable(attrs, self.skipped) for attrs in attributes]
        if self.skipped:
            log.info(
                "%d attribute values the templates cannot phrase were skipped (most common: %s)",
                sum(self.skipped.values()),
                ", ".join(f"{name} ×{n}" for name, n in self.skipped.most_common(5)),
            )
        self.short = sum(1 for w in self.words if w) if "attributes" in self.mix else 0
        log.info("Caption views %s: %d of %d images have short descriptions", mix, self.short, len(self.words))

    def view(self, index: int, epoch: int) -> View:
        """The view image ``index`` is paired with in ``epoch`` (epoch < 0, evaluation: its caption)."""
        words = self.words[index]
        if epoch < 0 or not words or "attributes" not in self.mix:
            return View(self.raw_captions[index], None)
        rng = _view_rng(self.seed, epoch, index)
        names = list(self.mix)
        if rng.choices(names, weights=[self.mix[n] for n in names])[0] == "full":
            return View(self.raw_captions[index], None)
        text, chosen = random_description(words, rng)
        return View(text, tuple(sorted(chosen.items())))

    def positives(self, keys: Sequence[tuple[int, int]]) -> np.ndarray:
        """(texts, images) mask: True where the text of ``keys[i]`` describes the image of ``keys[j]``."""
        captions = np.array([self.captions[index] for index, _ in keys], dtype=object)
        columns = Columns([self.words[index] for index, _ in keys])
        mask = np.zeros((len(keys), len(keys)), dtype=bool)
        for i, (index, epoch) in enumerate(keys):
            view = self.view(index, epoch)
            mask[i] = captions == captions[i] if view.asks is None else Query(view.asks).judge(columns)[0]
        return mask


def hard_negative_order(order: Sequence[int], words: Sequence[Mapping[str, str]], partners: int) -> list[int]:
    """``order`` with up to ``partners`` images that differ in exactly one attribute placed after each image.

    Images with no attributes keep their place in the order; with ``partners`` 0 or no attributes
    anywhere the order is returned unchanged.
    """
    if partners <= 0 or not any(words):
        return list(order)
    buckets: dict[tuple, deque[int]] = defaultdict(deque)  # all-but-one attribute → images, in order
    for i in order:
        for key in words[i]:
            buckets[(key, tuple(sorted((k, v) for k, v in words[i].items() if k != key)))].append(i)
    used: set[int] = set()
    out: list[int] = []
    for i in order:
        if i in used:
            continue
        used.add(i)
        out.append(i)
        wanted = partners
        for key in sorted(words[i]):
            bucket = buckets[(key, tuple(sorted((k, v) for k, v in words[i].items() if k != key)))]
            while bucket and bucket[0] in used:  # drop the placed images from the front
                bucket.popleft()
            for j in list(itertools.islice(bucket, PARTNER_SCAN)):
                if wanted and j not in used and words[j].get(key) != words[i][key]:
                    used.add(j)
                    out.append(j)
                    wanted -= 1
    return out
