"""Claude's attributes as words: the one attribute→words table, and short descriptions built from them.

People type a few words ("a red suv", "a van facing left"); captions are whole sentences. This
module phrases an image's approved attributes (catalog ``ATTRIBUTE_COLUMNS``) the way people type:
:func:`describe` renders any subset of them ("a red pickup truck seen from the side", "a red car"),
for evaluation queries (:mod:`carmatch.training.queries`) and training views
(:mod:`carmatch.training.views`) alike. A value the table cannot phrase (body type ``other``, an
``interior`` viewpoint, a colour of twelve words) is skipped, never an error.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from carmatch.catalog import ATTRIBUTE_COLUMNS

Attributes = tuple[tuple[str, str], ...]  # (key, value) pairs sorted by key: hashable, JSON-friendly

# body_type → words. Claude's prompt lists these; both spellings of a pickup are phrased the same.
BODY_WORDS = {
    "sedan": "sedan",
    "hatchback": "hatchback",
    "wagon": "station wagon",
    "suv": "suv",
    "crossover": "crossover",
    "pickup": "pickup truck",
    "pickup_truck": "pickup truck",
    "van": "van",
    "minivan": "minivan",
    "coupe": "coupe",
    "convertible": "convertible",
    "truck": "truck",
    "bus": "bus",
    "motorcycle": "motorcycle",
}
# viewpoint → the words after the car ("a red suv seen from the front").
VIEWPOINT_WORDS = {
    "front": "seen from the front",
    "rear": "seen from behind",
    "back": "seen from behind",
    "side": "seen from the side",
    "front-left": "seen from the front left",
    "front-right": "seen from the front right",
    "rear-left": "seen from the rear left",
    "rear-right": "seen from the rear right",
    "left": "facing left",
    "right": "facing right",
    "facing-left": "facing left",
    "facing-right": "facing right",
    "top": "seen from above",
}
WORD_TABLE = {"body_type": BODY_WORDS, "viewpoint": VIEWPOINT_WORDS}
# colour, make and model are free words: phrased as they are when they look like a few plain words
_FREE_WORDS = re.compile(r"^[a-z0-9][a-z0-9 .&'+-]{0,29}$")
_MAX_FREE_WORDS = 3
UNKNOWN_VALUES = frozenset({"", "null", "none", "unknown", "other", "n/a"})
# the order words take in a description: "a red toyota corolla sedan seen from the front"
WORD_ORDER = ("color", "make", "model", "body_type", "viewpoint")


def pair_attributes(raw: Mapping[str, Any] | None) -> Attributes:
    """The known attributes of a catalog record, lowercased, blanks and "unknown"s dropped."""
    out = []
    for key in ATTRIBUTE_COLUMNS:
        value = (raw or {}).get(key)
        if isinstance(value, str) and value.strip().lower() not in UNKNOWN_VALUES:
            out.append((key, " ".join(value.split()).lower()))
    return tuple(sorted(out))


def phrase(key: str, value: str) -> str | None:
    """The words for one attribute value, or None when the table cannot phrase it."""
    if key in WORD_TABLE:
        return WORD_TABLE[key].get(value.replace(" ", "_")) or WORD_TABLE[key].get(value.replace(" ", "-"))
    if key in ("color", "make", "model") and _FREE_WORDS.match(value) and len(value.split()) <= _MAX_FREE_WORDS:
        return value
    return None


def phrasable(attributes: Iterable[tuple[str, str]], skipped: Counter[str] | None = None) -> dict[str, str]:
    """``{key: words}`` of the attributes that can be phrased; the others are counted in ``skipped``."""
    words = {}
    for key, value in attributes:
        text = phrase(key, value)
        if text is None:
            if skipped is not None:
                skipped[f"{key}={value}"] += 1
        else:
            words[key] = text
    return words


def describe(words: Mapping[str, str]) -> str:
    """A short description of some phrased attributes: "a red suv", "a van facing left", "an orange car"."""
    middle = [words[key] for key in WORD_ORDER[:3] if key in words]
    noun = words.get("body_type", "car")
    text = " ".join([*middle, noun, *([words["viewpoint"]] if "viewpoint" in words else [])])
    article = "an" if text[0] in "aeiou" else "a"
    return f"{article} {text}"


VIEW_TEMPLATES = ("{d}", "a photo of {d}", "{d} in a photo")


def random_description(words: Mapping[str, str], rng: random.Random) -> tuple[str, dict[str, str]]:
    """A description of a random non-empty subset of ``words`` in a random template; returns (text, subset)."""
    keys = sorted(words)
    size = rng.randint(1, len(keys))
    chosen = {key: words[key] for key in rng.sample(keys, size)}
    if set(chosen) == {"model"} and "make" in words:  # "a corolla" alone says little: name the make too
        chosen["make"] = words["make"]
    return rng.choice(VIEW_TEMPLATES).format(d=describe(chosen)), chosen
