"""The strict parser of Claude's caption replies."""

from __future__ import annotations

import json

import pytest

from carmatch.captions.prompt import (
    ATTRIBUTE_FIELDS,
    PROMPT_VERSION,
    SYSTEM_PROMPT,
    CaptionReplyError,
    parse_caption_reply,
)
from tests.caption_support import reply_json


def test_prompt_asks_for_every_parsed_field_and_has_a_version() -> None:
    assert PROMPT_VERSION
    for name in ("caption", "attributes", *ATTRIBUTE_FIELDS, "refusal"):
        assert f'"{name}"' in SYSTEM_PROMPT


def test_well_formed_reply_parses_and_normalises_attributes() -> None:
    parsed = parse_caption_reply(reply_json(color=" Dark Blue ", body="SUV", make="  ", model=None))
    assert parsed.caption == "A Dark Blue SUV with a roof rack, seen from the front left."  # whitespace collapsed
    assert parsed.attributes == {
        "color": "dark blue",
        "body_type": "suv",
        "make": None,
        "model": None,
        "viewpoint": "front-left",
        "distinctive_features": ["roof rack"],
        "confidence": 0.7,
    }


def test_reply_inside_a_json_code_fence_is_accepted() -> None:
    parsed = parse_caption_reply("```json\n" + reply_json() + "\n```")
    assert parsed.attributes["color"] == "red"


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("", "empty"),
        ("Here is a red sedan with a roof rack.", "not valid JSON"),
        ('{"caption": "A red car", "attributes": {"color": "red"', "not valid JSON"),
        ("[1, 2]", "not an object"),
        ('{"attributes": {}}', "no 'caption'"),
        ('{"caption": "A red car"}', "no 'attributes'"),
        ('Sure! {"caption": "x", "attributes": {}}', "not valid JSON"),
    ],
)
def test_malformed_replies_are_refused_with_the_raw_text(raw: str, reason: str) -> None:
    with pytest.raises(CaptionReplyError, match=reason) as info:
        parse_caption_reply(raw)
    assert info.value.raw == raw
    assert not info.value.refusal


def test_missing_attribute_fields_are_named() -> None:
    data = json.loads(reply_json())
    del data["attributes"]["viewpoint"]
    del data["attributes"]["confidence"]
    with pytest.raises(CaptionReplyError, match="viewpoint, confidence"):
        parse_caption_reply(json.dumps(data))


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": True}, "confidence"),
        ({"confidence": "high"}, "confidence"),
        ({"distinctive_features": "roof rack"}, "distinctive_features"),
        ({"color": ""}, "color"),
        ({"make": 7}, "make"),
    ],
)
def test_wrongly_typed_attributes_are_refused(changes: dict, field: str) -> None:
    with pytest.raises(CaptionReplyError, match=field):
        parse_caption_reply(reply_json(**changes))


def test_refusal_object_is_a_refusal_not_a_caption() -> None:
    raw = '{"refusal": "The image shows a cat, not a car."}'
    with pytest.raises(CaptionReplyError, match="declined: The image shows a cat") as info:
        parse_caption_reply(raw)
    assert info.value.refusal and info.value.raw == raw
