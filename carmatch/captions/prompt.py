"""The versioned captioning prompt and the strict parser of Claude's replies.

The prompt lives here and nowhere else; :data:`PROMPT_VERSION` is stored with every caption it
produced. Change the wording, change the version. A reply becomes a caption only when it is a
JSON object with every field of :data:`ATTRIBUTE_FIELDS`, correctly typed; anything else (prose,
truncated JSON, a refusal) raises :class:`CaptionReplyError` and is stored as a failure.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from carmatch.errors import CarmatchError

PROMPT_VERSION = "car-caption-v1"

SYSTEM_PROMPT = """\
You describe photographs of cars for a search engine. People will later type short \
descriptions to find these photos, so write what a person would type when looking for this car.

Reply with one JSON object and nothing else: no prose, no markdown code fence. Use this shape:
{
  "caption": "One or two sentences: colour, body type, make and model if you can recognise \
them, distinctive features (roof rack, damage, stickers, wheels, modifications), viewpoint.",
  "attributes": {
    "color": "main body colour in plain words, e.g. red, dark blue, silver",
    "body_type": "one of: sedan, hatchback, wagon, suv, crossover, pickup, van, minivan, \
coupe, convertible, truck, bus, motorcycle, other",
    "make": "manufacturer, or null if not recognisable",
    "model": "model name, or null if not recognisable",
    "viewpoint": "one of: front, rear, side, front-left, front-right, rear-left, rear-right, \
top, interior, other",
    "distinctive_features": ["short phrases; empty list if none"],
    "confidence": 0.0
  }
}
"confidence" is a number from 0 to 1: how sure you are of make and model.
Describe the most prominent car if there are several. Never guess a make or model you cannot \
see evidence for; use null instead.
If the image shows no car, or you cannot describe it, reply exactly {"refusal": "<short reason>"}."""

USER_PROMPT = "Describe the car in this photo as the JSON object specified."
# A small car cut from a traffic frame goes with the frame, the car outlined in red (captions/live.py).
CROP_USER_PROMPT = (
    "Describe the car in the first photo as the JSON object specified. The second photo is the whole traffic "
    "frame that car was cut from, with it outlined in red: use it only as context, and describe only that car."
)

ATTRIBUTE_FIELDS = ("color", "body_type", "make", "model", "viewpoint", "distinctive_features", "confidence")
_STRING_FIELDS = ("color", "body_type", "viewpoint")
_NULLABLE_FIELDS = ("make", "model")
_FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```$", re.DOTALL)
MAX_CAPTION_CHARS = 1_000


class CaptionReplyError(CarmatchError):
    """Claude's reply is not a usable caption (not JSON, missing fields, or a refusal)."""

    def __init__(self, message: str, raw: str | None = None, refusal: bool = False):
        super().__init__(message)
        self.raw = raw
        self.refusal = refusal


@dataclass(frozen=True)
class ParsedCaption:
    """A caption and its attributes, validated."""

    caption: str
    attributes: dict[str, Any]


def parse_caption_reply(raw: str) -> ParsedCaption:
    """Parse Claude's reply strictly; raise CaptionReplyError (carrying the raw text) otherwise."""
    text = (raw or "").strip()
    if not text:
        raise CaptionReplyError("empty reply", raw)
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CaptionReplyError(f"reply is not valid JSON ({exc.msg} at char {exc.pos})", raw) from exc
    if not isinstance(data, dict):
        raise CaptionReplyError(f"reply is JSON {type(data).__name__}, not an object", raw)
    if "refusal" in data:
        raise CaptionReplyError(f"model declined: {str(data.get('refusal'))[:200]}", raw, refusal=True)
    caption = data.get("caption")
    if not isinstance(caption, str) or not caption.strip():
        raise CaptionReplyError("reply has no 'caption' string", raw)
    if len(caption) > MAX_CAPTION_CHARS:
        raise CaptionReplyError(f"caption is {len(caption)} characters, over {MAX_CAPTION_CHARS}", raw)
    attrs = data.get("attributes")
    if not isinstance(attrs, dict):
        raise CaptionReplyError("reply has no 'attributes' object", raw)
    missing = [name for name in ATTRIBUTE_FIELDS if name not in attrs]
    if missing:
        raise CaptionReplyError(f"attributes miss {', '.join(missing)}", raw)
    return ParsedCaption(" ".join(caption.split()), _clean_attributes(attrs, raw))


def _clean_attributes(attrs: dict[str, Any], raw: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _STRING_FIELDS:
        value = attrs[name]
        if not isinstance(value, str) or not value.strip():
            raise CaptionReplyError(f"attribute {name!r} must be a non-empty string, got {value!r}", raw)
        out[name] = value.strip().lower()
    for name in _NULLABLE_FIELDS:
        value = attrs[name]
        if value is not None and not isinstance(value, str):
            raise CaptionReplyError(f"attribute {name!r} must be a string or null, got {value!r}", raw)
        out[name] = value.strip() if isinstance(value, str) and value.strip() else None
    features = attrs["distinctive_features"]
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise CaptionReplyError("attribute 'distinctive_features' must be a list of strings", raw)
    out["distinctive_features"] = [f.strip() for f in features if f.strip()]
    confidence = attrs["confidence"]
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 <= confidence <= 1:
        raise CaptionReplyError(f"attribute 'confidence' must be a number from 0 to 1, got {confidence!r}", raw)
    out["confidence"] = float(confidence)
    return out
