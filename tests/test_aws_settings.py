"""AWS settings: the caption model's inference profile follows AWS_REGION; Titan and batch limits are checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from carmatch.bedrock_models import (
    DEFAULT_CAPTION_MODEL,
    THINKING_HEADROOM_TOKENS,
    caption_model_for_region,
    inference_config,
    region_geographies,
)
from carmatch.config import load_settings
from carmatch.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SONNET = "anthropic.claude-sonnet-4-6"
OLD_SONNET = "anthropic.claude-sonnet-4-5-20250929-v1:0"


def test_the_default_caption_model_is_claude_sonnet_4_6_through_the_us_profile() -> None:
    assert DEFAULT_CAPTION_MODEL == f"us.{SONNET}"
    assert load_settings({}).caption_model == DEFAULT_CAPTION_MODEL


@pytest.mark.parametrize(
    "region,expected",
    [
        ("us-west-2", f"us.{SONNET}"),
        ("eu-west-1", f"eu.{SONNET}"),
        ("eu-central-1", f"eu.{SONNET}"),
        ("ap-northeast-1", f"jp.{SONNET}"),
        ("ap-southeast-2", f"au.{SONNET}"),
        ("ap-south-1", f"global.{SONNET}"),  # Sonnet 4.6 has no apac. profile
        ("sa-east-1", f"global.{SONNET}"),
        ("me-central-1", f"global.{SONNET}"),
        ("il-central-1", f"global.{SONNET}"),
        ("ca-central-1", f"global.{SONNET}"),  # there is no ca. geography
        ("us-gov-west-1", f"us-gov.{SONNET}"),  # GovCloud has no global. profiles
    ],
)
def test_the_default_is_resolved_to_a_profile_the_region_may_call(region: str, expected: str) -> None:
    assert load_settings({"AWS_REGION": region}).caption_model == expected


def test_an_older_model_keeps_its_regional_profile_where_one_exists() -> None:
    assert caption_model_for_region(f"us.{OLD_SONNET}", "ap-south-1") == f"apac.{OLD_SONNET}"
    assert caption_model_for_region(f"apac.{OLD_SONNET}", "ap-northeast-1") == f"apac.{OLD_SONNET}"


def test_a_callable_profile_plain_id_or_arn_is_kept() -> None:
    assert caption_model_for_region(f"global.{SONNET}", "eu-west-1") == f"global.{SONNET}"
    assert caption_model_for_region(SONNET, "eu-west-1") == SONNET
    arn = "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/abc"
    assert caption_model_for_region(arn, "us-east-1") == arn
    assert region_geographies("sa-east-1") == ()


def test_an_explicit_caption_model_is_mapped_too() -> None:
    settings = load_settings({"AWS_REGION": "eu-west-3", "CARMATCH_CAPTION_MODEL": f"us.{SONNET}"})
    assert settings.caption_model == f"eu.{SONNET}"


@pytest.mark.parametrize(
    "model,temperature,thinks",
    [
        (f"us.{SONNET}", True, False),
        (f"global.{OLD_SONNET}", True, False),
        ("anthropic.claude-3-5-haiku-20241022-v1:0", True, False),
        ("us.anthropic.claude-opus-4-7", False, False),  # Opus 4.7 refuses temperature
        ("global.anthropic.claude-sonnet-5", False, True),  # Claude 5 refuses it and thinks first
        ("global.anthropic.claude-sonnet-5-5", False, True),
    ],
)
def test_request_parameters_are_those_the_model_accepts(model: str, temperature: bool, thinks: bool) -> None:
    config = inference_config(model, 600)
    assert ("temperature" in config) == temperature
    assert config["maxTokens"] == 600 + (THINKING_HEADROOM_TOKENS if thinks else 0)


def test_env_example_and_docs_name_the_default_caption_model() -> None:
    example = (ROOT / ".env.example").read_text()
    assert re.search(rf"^# CARMATCH_CAPTION_MODEL={re.escape(DEFAULT_CAPTION_MODEL)}\s", example, re.M)
    docs = (ROOT / "docs" / "aws-setup.md").read_text()
    assert re.search(rf"^\| `CARMATCH_CAPTION_MODEL` \| `{re.escape(DEFAULT_CAPTION_MODEL)}` \|", docs, re.M)
    # no page offers an older Claude as the one to set
    for text in (example, (ROOT / "README.md").read_text()):
        assert set(re.findall(r"anthropic\.claude-[a-z0-9-]+", text)) <= {SONNET}


@pytest.mark.parametrize("dim", ["256", "384", "1024"])
def test_titan_embedding_lengths_are_accepted(dim: str) -> None:
    assert load_settings({"CARMATCH_EMBED_DIM": dim}).embed_dim == int(dim)


@pytest.mark.parametrize("env", [{"CARMATCH_EMBED_DIM": "512"}, {"CARMATCH_BATCH_TIMEOUT_HOURS": "12"}])
def test_values_bedrock_would_refuse_are_refused_at_start(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=next(iter(env))):
        load_settings(env)


def test_batch_timeout_defaults_to_72_hours_and_can_be_set() -> None:
    assert load_settings({}).batch_timeout_hours == 72
    assert load_settings({"CARMATCH_BATCH_TIMEOUT_HOURS": "168"}).batch_timeout_hours == 168
