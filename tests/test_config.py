"""Settings come from CARMATCH_* variables, with clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from carmatch.config import DEFAULT_HOME, DEFAULT_MODEL, DEFAULT_PRETRAINED, load_dotenv_file, load_settings
from carmatch.errors import ConfigError


def test_defaults_need_no_environment() -> None:
    settings = load_settings({})
    assert settings.home == DEFAULT_HOME == Path(__file__).resolve().parents[1] / "data"
    assert (settings.model, settings.pretrained, settings.device) == (DEFAULT_MODEL, DEFAULT_PRETRAINED, "auto")
    assert settings.db_path == DEFAULT_HOME / "carmatch.db"
    assert settings.admin_password == ""


def test_environment_overrides_each_setting() -> None:
    settings = load_settings(
        {
            "CARMATCH_HOME": "/srv/cars",
            "CARMATCH_MODEL": "/models/tiny.json",
            "CARMATCH_PRETRAINED": "none",
            "CARMATCH_DEVICE": "cuda:1",
            "CARMATCH_BATCH_SIZE": "64",
            "AWS_REGION": "eu-west-1",
            "HF_HUB_OFFLINE": "1",
        }
    )
    assert settings.home == Path("/srv/cars")
    assert settings.model == "/models/tiny.json" and settings.pretrained == "none"
    assert settings.device == "cuda:1" and settings.batch_size == 64
    assert settings.aws_region == "eu-west-1" and settings.offline


@pytest.mark.parametrize(
    "env,message",
    [
        ({"CARMATCH_BATCH_SIZE": "lots"}, "CARMATCH_BATCH_SIZE"),
        ({"CARMATCH_BATCH_SIZE": "-3"}, "positive"),
        ({"CARMATCH_DEVICE": "gpu"}, "CARMATCH_DEVICE"),
    ],
)
def test_bad_values_are_reported_by_variable_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_admin_password_is_not_shown_in_repr() -> None:
    settings = load_settings({"CARMATCH_ADMIN_PASSWORD": "s3cret"})
    assert settings.admin_password == "s3cret" and "s3cret" not in repr(settings)


def test_dotenv_file_fills_missing_variables_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("CARMATCH_BATCH_SIZE=7\nCARMATCH_DEVICE=cpu\n")
    monkeypatch.delenv("CARMATCH_BATCH_SIZE", raising=False)
    monkeypatch.setenv("CARMATCH_DEVICE", "auto")
    load_dotenv_file(env_file)
    settings = load_settings()
    assert settings.batch_size == 7 and settings.device == "auto"
    monkeypatch.delenv("CARMATCH_BATCH_SIZE")


def test_default_home_is_the_same_from_any_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = load_settings({}).home
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert load_settings({}).home == first
    assert first.is_absolute() and not first.is_relative_to(tmp_path)
