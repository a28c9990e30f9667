"""AWS settings: the caption model's inference profile follows AWS_REGION; Titan and batch limits are checked."""

from __future__ import annotations

import pytest

from carmatch.config import DEFAULT_CAPTION_MODEL, caption_model_for_region, load_settings, region_geographies
from carmatch.errors import ConfigError

SONNET = "anthropic.claude-sonnet-4-5-20250929-v1:0"


def test_the_default_caption_model_is_a_us_profile_of_claude_sonnet_4_5() -> None:
    assert DEFAULT_CAPTION_MODEL == f"us.{SONNET}"
    assert load_settings({}).caption_model == DEFAULT_CAPTION_MODEL


@pytest.mark.parametrize(
    "region,expected",
    [
        ("us-west-2", f"us.{SONNET}"),
        ("eu-west-1", f"eu.{SONNET}"),
        ("eu-central-1", f"eu.{SONNET}"),
        ("ap-south-1", f"apac.{SONNET}"),
        ("ap-northeast-1", f"jp.{SONNET}"),
        ("ap-southeast-2", f"au.{SONNET}"),
        ("us-gov-west-1", f"us-gov.{SONNET}"),
    ],
)
def test_a_us_profile_is_mapped_to_the_regions_geography(region: str, expected: str) -> None:
    assert load_settings({"AWS_REGION": region}).caption_model == expected


def test_a_matching_profile_global_profile_plain_id_or_arn_is_kept() -> None:
    assert caption_model_for_region(f"apac.{SONNET}", "ap-northeast-1") == f"apac.{SONNET}"
    assert caption_model_for_region(f"global.{SONNET}", "eu-west-1") == f"global.{SONNET}"
    assert caption_model_for_region(SONNET, "eu-west-1") == SONNET
    arn = "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/abc"
    assert caption_model_for_region(arn, "us-east-1") == arn


def test_a_region_without_a_known_geography_keeps_the_id_for_aws_check_to_report() -> None:
    assert region_geographies("sa-east-1") == ()
    assert load_settings({"AWS_REGION": "sa-east-1"}).caption_model == DEFAULT_CAPTION_MODEL


def test_an_explicit_caption_model_is_mapped_too() -> None:
    settings = load_settings({"AWS_REGION": "eu-west-3", "CARMATCH_CAPTION_MODEL": f"us.{SONNET}"})
    assert settings.caption_model == f"eu.{SONNET}"


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
