"""Hosting on a Hugging Face Space: the README's front matter, the install files, and where data lives."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from carmatch.config import load_settings
from carmatch.runtime import Runtime
from carmatch.space import storage

REPO = Path(__file__).resolve().parents[2]
SPACE_KEYS = (
    "title",
    "emoji",
    "sdk",
    "sdk_version",
    "app_file",
    "python_version",
    "short_description",
    "suggested_hardware",
    "suggested_storage",
    "license",
)


def front_matter() -> dict[str, object]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with a --- YAML block (the Space's configuration)"
    return yaml.safe_load(match.group(1))


def pins(path: Path) -> dict[str, str]:
    """``{distribution name: version}`` of a requirements file (extras dropped, comments ignored)."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            found[re.sub(r"\[.*\]", "", name).strip().lower()] = version.strip()
    return found


def test_front_matter_matches_requirements_and_app() -> None:
    meta = front_matter()
    assert set(SPACE_KEYS) <= set(meta), f"missing: {set(SPACE_KEYS) - set(meta)}"
    assert meta["sdk"] == "gradio"
    assert str(meta["sdk_version"]) == pins(REPO / "requirements.txt")["gradio"]
    app = REPO / str(meta["app_file"])
    assert app.is_file() and re.search(r"^demo = ", app.read_text(), re.M), "app_file must define `demo`"
    assert re.fullmatch(r"3\.\d+(\.\d+)?", str(meta["python_version"])), "quote it: 3.10 must not become 3.1"
    assert len(str(meta["short_description"])) <= 60  # the Hub's limit
    assert meta["suggested_storage"] in ("small", "medium", "large")


def test_requirements_install_the_mcp_extra_and_space_installs_cpu_torch_first() -> None:
    requirements = (REPO / "requirements.txt").read_text()
    assert re.search(r"^gradio\[mcp\]==", requirements, re.M)
    assert "hnswlib==" not in requirements.replace("chroma-hnswlib==", ""), "hnswlib ships no wheels"
    runtime, space_first = pins(REPO / "requirements.txt"), pins(REPO / "pre-requirements.txt")
    pre = (REPO / "pre-requirements.txt").read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in pre
    for name in ("torch", "torchvision"):  # the same versions, so requirements.txt keeps the CPU builds
        assert space_first[name] == runtime[name]


def test_a_space_with_persistent_storage_keeps_data_and_cache_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    monkeypatch.setattr(storage, "PERSISTENT_VOLUME", volume)
    monkeypatch.delenv("CARMATCH_HOME")
    env = {"SPACE_ID": "someone/carmatch"}
    assert load_settings(env).home == volume / "carmatch"
    storage.apply_storage_defaults(env)
    assert env["HF_HOME"] == str(volume / ".huggingface")
    assert storage.storage_warning(volume / "carmatch", env) is None
    explicit = {"SPACE_ID": "x", "CARMATCH_HOME": str(tmp_path / "mine"), "HF_HOME": "/elsewhere"}
    storage.apply_storage_defaults(explicit)
    assert load_settings(explicit).home == tmp_path / "mine" and explicit["HF_HOME"] == "/elsewhere"


def test_a_space_without_persistent_storage_says_data_is_lost_on_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage, "PERSISTENT_VOLUME", tmp_path / "not-mounted")
    env = {"SPACE_ID": "someone/carmatch"}
    assert "lost when it restarts" in (storage.storage_warning(tmp_path / "home", env) or "")
    storage.apply_storage_defaults(env)
    assert "HF_HOME" not in env
    assert storage.storage_warning(tmp_path / "home", {}) is None  # off a Space the disk is the user's own


def test_catalog_and_index_survive_a_restart_of_the_process(
    runtime: Runtime, car_folder: Path, tiny_model: tuple[str, str]
) -> None:
    runtime.ingestor().ingest_folder(car_folder)
    runtime.close()
    env = {**os.environ, "PYTHONPATH": str(REPO), "CARMATCH_HOME": str(runtime.settings.home.resolve())}
    env.update(CARMATCH_MODEL=tiny_model[0], CARMATCH_PRETRAINED=tiny_model[1], CARMATCH_DEVICE="cpu")
    done = subprocess.run(
        [sys.executable, "-m", "admin", "search", "red car", "--k", "3", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 3
