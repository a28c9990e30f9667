"""Claude on Bedrock: the default caption model, its inference profile per region, and the request it accepts.

One owner for three facts that AWS and Anthropic change often (checked 2026-12-08, docs/aws-setup.md says where):

- **Which model.** Claude Sonnet 4.6 (``anthropic.claude-sonnet-4-6``, no date or version suffix) is the
  newest Sonnet that Bedrock serves through Converse and batch inference (Converse records) with
  ``global.``, ``us.``, ``eu.``, ``jp.`` and ``au.`` cross-region profiles; it has no ``apac.`` profile.
- **Which profile.** A profile id starts with its geography and may only be called from a source region
  of that geography. ``global.`` profiles work from every commercial region (not GovCloud, whose
  ``us-gov.`` profiles live in the ``aws-us-gov`` partition). There is no ``ca.`` geography: Canada,
  South America, the Middle East, Israel and Africa use ``global.``.
- **Which parameters.** Claude Opus 4.7 and later and every Claude 5 model refuse ``temperature``/``top_p``
  (HTTP 400 "temperature is deprecated for this model"); Claude 5 models think adaptively by default,
  so their token budget must leave room for thinking before the JSON reply.

``aws check`` asks Bedrock itself for the lifecycle (``GetFoundationModel``) and the profile
(``GetInferenceProfile``), so a model that turns Legacy is reported even before this table changes.
"""

from __future__ import annotations

import re
from typing import Any

DEFAULT_CAPTION_BASE = "anthropic.claude-sonnet-4-6"
GLOBAL_PROFILE = "global"
# The default for the default region (us-east-1); caption_model_for_region picks the profile of AWS_REGION.
DEFAULT_CAPTION_MODEL = f"us.{DEFAULT_CAPTION_BASE}"

# The geographies whose profiles a source region may call, best first (global. is added for commercial regions).
_REGION_GEOGRAPHIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("us-gov-", ("us-gov",)),
    ("us-", ("us",)),
    ("eu-", ("eu",)),
    ("ap-northeast-1", ("jp", "apac")),
    ("ap-northeast-3", ("jp", "apac")),
    ("ap-southeast-2", ("au", "apac")),
    ("ap-southeast-4", ("au", "apac")),
    ("ap-", ("apac",)),
)
PROFILE_GEOGRAPHIES = frozenset({GLOBAL_PROFILE, "us", "us-gov", "eu", "apac", "jp", "au"})
# Models whose profiles are known (Anthropic's Bedrock model table and Bedrock's catalogue, 2026-12-08; us-gov
# is assumed, not seen documented); a model not listed is assumed to have every geography's profile, and
# aws check asks Bedrock (GetInferenceProfile) either way.
MODEL_GEOGRAPHIES: dict[str, frozenset[str]] = {
    "anthropic.claude-sonnet-4-6": frozenset({GLOBAL_PROFILE, "us", "eu", "jp", "au", "us-gov"}),
}
THINKING_HEADROOM_TOKENS = 4000  # added to the reply budget of a model that always thinks first
_CLAUDE_NAME = re.compile(r"anthropic\.claude-([a-z]+)-(\d+)(?:-(\d)(?!\d))?")


def region_partition(region: str) -> str:
    """The AWS partition of ``region``: ``aws``, ``aws-us-gov`` or ``aws-cn``."""
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws"


def region_geographies(region: str) -> tuple[str, ...]:
    """The geographic (non-global) profile prefixes callable from ``region``, best first; empty when none."""
    for start, geographies in _REGION_GEOGRAPHIES:
        if region.startswith(start):
            return geographies
    return ()


def profile_geography(model_id: str) -> str | None:
    """The geography prefix of an inference profile id (``us`` of ``us.anthropic...``); None for a plain id or ARN."""
    head, dot, _ = model_id.partition(".")
    return head if dot and head in PROFILE_GEOGRAPHIES else None


def base_model(model_id: str) -> str:
    """The foundation model an id names: ``anthropic.claude-sonnet-4-6`` for ``eu.anthropic.claude-sonnet-4-6``."""
    return model_id.partition(".")[2] if profile_geography(model_id) else model_id


def profile_choices(base: str, region: str) -> tuple[str, ...]:
    """The profile prefixes of ``base`` callable from ``region``, best first (``global`` last, commercial only)."""
    choices = region_geographies(region)
    if region_partition(region) == "aws":
        choices = (*choices, GLOBAL_PROFILE)
    known = MODEL_GEOGRAPHIES.get(base)
    return tuple(g for g in choices if known is None or g in known)


def caption_model_for_region(model_id: str, region: str) -> str:
    """``model_id`` as a profile ``region`` may call (``us.`` -> ``eu.`` in eu-west-1, ``global.`` in sa-east-1).

    Plain model ids and ARNs are kept as given, as is a profile ``region`` may already call.
    """
    geography = profile_geography(model_id)
    if geography is None:
        return model_id
    choices = profile_choices(base_model(model_id), region)
    if geography in choices or not choices:
        return model_id
    return f"{choices[0]}.{base_model(model_id)}"


def _claude_version(model_id: str) -> tuple[str, int, int] | None:
    """(family, major, minor) of a Claude 4-style id (``sonnet``, 4, 6); None for older or unknown names."""
    match = _CLAUDE_NAME.search(base_model(model_id))
    if match is None:
        return None
    return match.group(1), int(match.group(2)), int(match.group(3) or 0)


def _is_claude(model_id: str) -> bool:
    return "anthropic.claude" in model_id


def accepts_sampling(model_id: str) -> bool:
    """False for the models that refuse ``temperature`` (Opus 4.7+, every Claude 5, any newer family)."""
    if not _is_claude(model_id) or re.search(r"claude-(instant|v2|3)", model_id):
        return True  # not Claude, or an old Claude that takes every sampling parameter
    version = _claude_version(model_id)
    if version is None:
        return False  # a new family name: assume the current rules
    family, major, minor = version
    return major < 5 and not (family == "opus" and (major, minor) >= (4, 7))


def always_thinks(model_id: str) -> bool:
    """True for the models that think adaptively by default (Claude 5 and later)."""
    if not _is_claude(model_id) or re.search(r"claude-(instant|v2|3)", model_id):
        return False
    version = _claude_version(model_id)
    return version is None or version[1] >= 5


def inference_config(model_id: str, max_tokens: int) -> dict[str, Any]:
    """Converse's ``inferenceConfig`` for a caption: temperature 0 where accepted, room for thinking where needed."""
    config: dict[str, Any] = {"maxTokens": max_tokens + (THINKING_HEADROOM_TOKENS if always_thinks(model_id) else 0)}
    if accepts_sampling(model_id):
        config["temperature"] = 0.0
    return config
