"""A car data set's class name ("2012 Tesla Model S Sedan", "AM General Hummer SUV 2000") read as a caption.

Stanford Cars names each class "Make Model Body Year" (some copies put the year first); the
caption is "a photo of a 2012 Tesla Model S Sedan" and the attributes are what the name says:
make, model, year and body type (only when a word of the name is a body type).
"""

from __future__ import annotations

import re
from typing import Any

# A word of the class name -> the body_type value the captions prompt uses (carmatch/captions/prompt.py).
BODY_WORDS = {
    "sedan": "sedan",
    "hatchback": "hatchback",
    "wagon": "wagon",
    "suv": "suv",
    "crossover": "crossover",
    "coupe": "coupe",
    "convertible": "convertible",
    "minivan": "minivan",
    "van": "van",
    "cab": "pickup",
    "supercab": "pickup",
    "pickup": "pickup",
}
CAB_WORDS = {"crew", "regular", "extended", "club", "quad"}  # "Crew Cab": the cab's kind, not the model
TWO_WORD_MAKES = ("am general", "aston martin", "land rover")
YEAR = re.compile(r"^(19|20)\d\d$")


def _split_year(words: list[str]) -> tuple[str | None, list[str]]:
    years = [w for w in words if YEAR.match(w)]
    year = years[0] if years else None
    return year, [w for w in words if w != year]


def _split_body(words: list[str]) -> tuple[str | None, list[str]]:
    """The last body-type word of the name and the words left once it (and a cab's kind) is removed."""
    for i in range(len(words) - 1, 0, -1):  # never the first word: that is the make
        body = BODY_WORDS.get(words[i].lower())
        if body is None:
            continue
        start = i - 1 if body == "pickup" and words[i - 1].lower() in CAB_WORDS and i > 1 else i
        return body, words[:start] + words[i + 1 :]
    return None, words


def label_attributes(label: str) -> dict[str, Any]:
    """The attributes a class name gives: make, model, year (int) and body_type, where the name says them."""
    year, words = _split_year(label.split())
    body, words = _split_body(words)
    lowered = " ".join(words).lower()
    make_words = 2 if lowered.startswith(TWO_WORD_MAKES) and len(words) > 2 else 1
    attrs: dict[str, Any] = {}
    if words:
        attrs["make"] = " ".join(words[:make_words])
        if words[make_words:]:
            attrs["model"] = " ".join(words[make_words:])
    if year:
        attrs["year"] = int(year)
    if body:
        attrs["body_type"] = body
    return attrs


def label_caption(label: str) -> str:
    """The caption of a class name: "a photo of a 2012 Tesla Model S Sedan" (year first)."""
    year, words = _split_year(label.replace("_", " ").split())
    name = " ".join([year, *words] if year else words)
    article = "an" if name[:1].lower() in "aeiou" and not year else "a"
    return f"a photo of {article} {name}"


def usable_label(label: Any) -> str | None:
    """The class name as text, or None when it says nothing about a car (blank, or only a number)."""
    if label is None:
        return None
    text = " ".join(str(label).replace("_", " ").split())
    return text if re.search(r"[A-Za-z]", text) else None
