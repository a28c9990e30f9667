"""The training set: which captioned images are training data, and the one split every consumer uses.

**The rule.** Training data is every live (not deleted) image with a non-empty caption whose review
state is ``approved``; ``include_unreviewed`` adds the ``unreviewed`` ones. Rejected captions never
count. Fallback: while *nothing* is approved yet, the unreviewed captions are used (source
``unreviewed``, with a warning), so a first fine-tune works before anyone has reviewed.

**The split.** Each image goes to ``train``, ``validation`` or ``test`` by a salted hash of its id
(its content hash) alone: the same image always lands in the same split, whatever else is in the
collection. The fractions are one fact of the collection, stored in the catalog (default 10 %
validation, 10 % test); ``train --val-fraction/--test-fraction`` changes them, and CLIP fine-tuning,
evaluation, ``dataset splits`` and the Titan export all read them from here, so an image in the
test split can never be in any training file.

**Split groups.** Images that must never be separated (near-duplicate copies of one photo; the car
crops of one traffic frame) share a *group key*, and the hash is taken of that key instead of the
image id: every member lands in the split of its group. An image with no group key is its own group
(key = its id), so nothing moves until a group is recorded. Groups are kept in the catalog's meta
(``split_groups``), one mapping ``{image_id: group_key}`` per *source*, written with
:func:`set_split_groups` (replace one source, e.g. ``"near_duplicates"`` after each duplicate scan)
or :func:`add_split_groups` (merge); the cars cut from one traffic frame are one more source, read
from the catalog's crops table (a crop's key is its frame's id). :func:`split_groups` joins all
sources: images linked through any source form one group,
whose key is the smallest key or id in it, so a member that is its group's smallest key keeps its
own split. Recording a group can move its other members (a warning says how many changed split).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from carmatch.errors import InvalidInputError

if TYPE_CHECKING:
    from carmatch.catalog import Catalog, ImageRecord

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {"val": "validation"}  # the name older runs wrote into pairs.jsonl
SPLIT_SALT = "carmatch-split-v1"  # changing it would move every image: never change it
SPLIT_META_KEY = "training_split"
DEFAULT_VALIDATION_FRACTION = 0.1
DEFAULT_TEST_FRACTION = 0.1
SOURCES = ("approved", "approved+unreviewed", "unreviewed")
SPLIT_GROUPS_META_KEY = "split_groups"  # {source: {image_id: group_key}}


@dataclass(frozen=True)
class SplitFractions:
    """The shares of the collection held out for validation and for test; the rest is train."""

    validation: float = DEFAULT_VALIDATION_FRACTION
    test: float = DEFAULT_TEST_FRACTION

    def checked(self) -> SplitFractions:
        """Itself, or InvalidInputError when a share is outside (0, 1) or they leave nothing to train on."""
        if not (0 < self.validation < 1 and 0 < self.test < 1 and self.validation + self.test < 1):
            raise InvalidInputError(
                field="fractions",
                value=(self.validation, self.test),
                limit=(0, 1),
                reason=f"must each be between 0 and 1 and sum below 1 (got {self.validation:g} and {self.test:g})",
                label="validation and test fractions",
            )
        return self

    def same_as(self, other: SplitFractions) -> bool:
        """True when both hold out the same shares."""
        return math.isclose(self.validation, other.validation) and math.isclose(self.test, other.test)

    def describe(self) -> str:
        """``10% validation, 10% test`` for messages."""
        return f"{self.validation:.0%} validation, {self.test:.0%} test"


def split_bucket(image_id: str) -> float:
    """Where an image falls in [0, 1): a salted hash of its id alone."""
    digest = hashlib.sha256(f"{SPLIT_SALT}:{image_id}".encode()).hexdigest()
    return int(digest[:12], 16) / float(16**12)


def split_of(image_id: str, fractions: SplitFractions = SplitFractions(), group: str | None = None) -> str:
    """``train``, ``validation`` or ``test`` (of ``group`` when given): test is the lowest buckets, validation next."""
    bucket = split_bucket(group or image_id)
    if bucket < fractions.test:
        return "test"
    if bucket < fractions.test + fractions.validation:
        return "validation"
    return "train"


def split_name(name: str, also: tuple[str, ...] = ()) -> str:
    """The public name of a split (``val`` is read as ``validation``; ``also`` names more choices)."""
    canonical = SPLIT_ALIASES.get(name.strip().lower(), name.strip().lower())
    if canonical not in (*SPLITS, *also):
        raise InvalidInputError(field="split", value=name, limit=(*SPLITS, *also))
    return canonical


# -- the collection's fractions ---------------------------------------------------------------
def collection_split(catalog: Catalog) -> SplitFractions:
    """The split fractions stored for the collection (the defaults until a training run sets others)."""
    raw = catalog.get_meta(SPLIT_META_KEY)
    if raw is None:
        return SplitFractions()
    try:
        data = json.loads(raw)
        return SplitFractions(float(data["validation"]), float(data["test"])).checked()
    except (ValueError, KeyError, TypeError, InvalidInputError) as exc:
        log.warning("Ignoring an unreadable stored split (%s); using the default fractions", exc)
        return SplitFractions()


def set_collection_split(catalog: Catalog, fractions: SplitFractions) -> bool:
    """Make ``fractions`` the collection's split; True (and a warning) when that moved images."""
    fractions.checked()
    current = collection_split(catalog)
    if current.same_as(fractions):
        return False
    catalog.set_meta(SPLIT_META_KEY, json.dumps({"validation": fractions.validation, "test": fractions.test}))
    log.warning(
        "The collection's split changes from %s to %s: evaluation, `dataset splits` and exports follow it "
        "from now on (export Titan files again).",
        current.describe(),
        fractions.describe(),
    )
    return True


def requested_split(catalog: Catalog, validation: float | None = None, test: float | None = None) -> SplitFractions:
    """The given fractions, each one that is None taken from the collection's split."""
    current = collection_split(catalog)
    return SplitFractions(
        current.validation if validation is None else validation,
        current.test if test is None else test,
    ).checked()


def matching_split(catalog: Catalog, validation: float | None = None, test: float | None = None) -> SplitFractions:
    """The collection's split; InvalidInputError when a given fraction differs (only training changes it)."""
    current = collection_split(catalog)
    asked = requested_split(catalog, validation, test)
    if not asked.same_as(current):
        raise InvalidInputError(
            f"Evaluation and exports follow the collection's split ({current.describe()}, set by training) "
            "so that no test image is ever trained on",
            field="fractions",
            value=(asked.validation, asked.test),
            limit=(current.validation, current.test),
            reason=f"must match it (got {asked.describe()})",
            label="validation and test fractions",
            hint=f"Leave them out, or train with --val-fraction {asked.validation:g} "
            f"--test-fraction {asked.test:g} to change the split.",
        )
    return current


# -- split groups ------------------------------------------------------------------------------
def _stored_groups(catalog: Catalog) -> dict[str, dict[str, str]]:
    """Every source's ``{image_id: group_key}`` as stored (empty when none or unreadable)."""
    raw = catalog.get_meta(SPLIT_GROUPS_META_KEY)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
        return {str(src): {str(k): str(v) for k, v in members.items()} for src, members in data.items()}
    except (ValueError, AttributeError, TypeError) as exc:
        log.warning("Ignoring unreadable split groups (%s); every image is its own group", exc)
        return {}


def _write_groups(catalog: Catalog, stored: dict[str, dict[str, str]]) -> None:
    before = split_groups(catalog)
    catalog.set_meta(SPLIT_GROUPS_META_KEY, json.dumps(stored, sort_keys=True) if stored else None)
    after = split_groups(catalog)
    moved = sum(1 for i in set(before) | set(after) if split_bucket(before.get(i, i)) != split_bucket(after.get(i, i)))
    if moved:
        log.warning("Split groups changed: %d image(s) now follow their group's split", moved)


def set_split_groups(catalog: Catalog, source: str, groups: Mapping[str, str]) -> None:
    """Replace the groups one ``source`` records (``{image_id: group_key}``; empty removes the source)."""
    stored = _stored_groups(catalog)
    stored.pop(source, None)
    if groups:
        stored[source] = {str(k): str(v) for k, v in groups.items()}
    _write_groups(catalog, stored)


def add_split_groups(catalog: Catalog, source: str, groups: Mapping[str, str]) -> None:
    """Add (or change) some members of one ``source``'s groups, keeping the rest."""
    stored = _stored_groups(catalog)
    stored.setdefault(source, {}).update({str(k): str(v) for k, v in groups.items()})
    _write_groups(catalog, stored)


def split_groups(catalog: Catalog) -> dict[str, str]:
    """``{image_id: group_key}`` over all sources joined: linked images share the smallest key of their group."""
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    sources = [*_stored_groups(catalog).values(), catalog.crop_frames()]  # a frame's cars: the crops table (#27)
    for members in sources:
        for image_id, key in members.items():
            a, b = root(image_id), root(key)
            if a != b:
                parent[max(a, b)] = min(a, b)  # the smaller key stays the root
    return {node: root(node) for node in parent if root(node) != node}


# -- the rule ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingSet:
    """Which review states make up the training data (and why), and the split over it."""

    states: tuple[str, ...]
    source: str  # one of SOURCES; "unreviewed" is the fallback while nothing is approved
    fractions: SplitFractions
    groups: Mapping[str, str] = field(default_factory=dict)  # image id -> group key (split_groups)

    def split(self, image_id: str) -> str:
        """The split of one image: its group's, when it belongs to one."""
        return split_of(image_id, self.fractions, self.groups.get(image_id))


def training_set(
    catalog: Catalog, include_unreviewed: bool = False, fractions: SplitFractions | None = None
) -> TrainingSet:
    """Apply the rule to the catalog (with the collection's split unless ``fractions`` are given)."""
    split = fractions.checked() if fractions is not None else collection_split(catalog)
    groups = split_groups(catalog)
    if include_unreviewed:
        return TrainingSet(("approved", "unreviewed"), "approved+unreviewed", split, groups)
    if catalog.count_captioned(("approved",)) > 0:
        return TrainingSet(("approved",), "approved", split, groups)
    unreviewed = catalog.count_captioned(("unreviewed",))
    if unreviewed:
        log.warning("No approved captions yet; using the %d unreviewed captions as training data", unreviewed)
    return TrainingSet(("unreviewed",), "unreviewed", split, groups)


def count_records(catalog: Catalog, chosen: TrainingSet) -> int:
    """How many images the training set holds."""
    return catalog.count_captioned(chosen.states)


def iter_records(catalog: Catalog, chosen: TrainingSet) -> Iterator[ImageRecord]:
    """The training set's images, by id, read in chunks (memory stays flat at any size)."""
    return catalog.iter_captioned(chosen.states)


def splits(catalog: Catalog, include_unreviewed: bool = False) -> dict[str, list[str]]:
    """Every training image's id by split: ``{"train": [...], "validation": [...], "test": [...]}``."""
    return split_ids(catalog, training_set(catalog, include_unreviewed))


def split_ids(catalog: Catalog, chosen: TrainingSet) -> dict[str, list[str]]:
    """The ids of ``chosen`` by split, each list sorted."""
    out: dict[str, list[str]] = {name: [] for name in SPLITS}
    for record in iter_records(catalog, chosen):
        out[chosen.split(record.id)].append(record.id)
    return out
