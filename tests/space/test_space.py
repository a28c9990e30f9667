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
    "license",
    "models",
    "datasets",
    "preload_from_hub",
)
# ZeroGPU's supported versions (hub-docs spaces-zerogpu.md, checked 2026-12-07): the Space must stay inside them.
ZEROGPU_PYTHONS = ("3.10.13", "3.12.12")
ZEROGPU_TORCH = ((2, 8), (2, 11))
# Keys the current configuration reference no longer honours (persistent storage is gone).
GONE_KEYS = ("suggested_storage",)


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
    assert not set(GONE_KEYS) & set(meta), "suggested_storage is ignored now: persistence is CARMATCH_PERSIST_DIR"
    assert meta["sdk"] == "gradio"
    assert str(meta["sdk_version"]) == pins(REPO / "requirements.txt")["gradio"]
    app = REPO / str(meta["app_file"])
    assert app.is_file() and re.search(r"^demo = ", app.read_text(), re.M), "app_file must define `demo`"
    assert str(meta["python_version"]) in ZEROGPU_PYTHONS, "quote it, and keep it one ZeroGPU supports"
    assert len(str(meta["short_description"])) <= 60  # the Hub's limit


def test_the_torch_every_recipe_installs_is_one_zerogpu_supports() -> None:
    runtime = pins(REPO / "requirements.txt")
    major, minor = (int(part) for part in runtime["torch"].split(".")[:2])
    low, high = ZEROGPU_TORCH
    assert low <= (major, minor) <= high, f"torch {runtime['torch']} is outside ZeroGPU's {low}-{high}"
    assert "spaces" in runtime, "the spaces package provides @spaces.GPU"


def test_preload_fetches_the_default_weights_carmatch_looks_for() -> None:
    from carmatch.config import DEFAULT_MODEL, DEFAULT_PRETRAINED
    from carmatch.embedding.weights import hub_weights

    hub = hub_weights(DEFAULT_MODEL, DEFAULT_PRETRAINED)
    assert hub is not None
    meta = front_matter()
    preloaded = [str(entry).split() for entry in meta["preload_from_hub"]]  # type: ignore[union-attr]
    assert [hub.repo_id, hub.filenames[0]] in [entry[:2] for entry in preloaded]
    assert hub.repo_id in meta["models"]  # type: ignore[operator]


def test_carmatch_no_longer_moves_the_hugging_face_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """preload_from_hub writes to the default cache and ignores a changed HF_HOME: carmatch must read it there."""
    monkeypatch.delenv("HF_HOME", raising=False)
    env = {"SPACE_ID": "someone/carmatch"}
    load_settings(env)
    import app  # noqa: F401 - importing the app must not set HF_HOME either

    assert "HF_HOME" not in os.environ and "HF_HOME" not in env


def test_cpu_recipe_installs_cpu_torch_of_the_same_versions() -> None:
    requirements = (REPO / "requirements.txt").read_text()
    assert re.search(r"^gradio\[mcp\]==", requirements, re.M)
    assert "hnswlib==" not in requirements.replace("chroma-hnswlib==", ""), "hnswlib ships no wheels"
    assert not (REPO / "pre-requirements.txt").exists(), "a root pre-requirements.txt would give ZeroGPU CPU torch"
    cpu_file = REPO / "deploy" / "cpu-pre-requirements.txt"
    runtime, space_first = pins(REPO / "requirements.txt"), pins(cpu_file)
    assert "--index-url https://download.pytorch.org/whl/cpu" in cpu_file.read_text()
    for name in ("torch", "torchvision"):  # the same versions, so requirements.txt keeps the CPU builds
        assert space_first[name] == runtime[name]


def test_on_a_space_without_a_persist_folder_the_admin_is_told_work_is_lost(tmp_path: Path) -> None:
    on_space = {"SPACE_ID": "someone/carmatch"}
    assert "lost when it restarts" in (storage.storage_warning(None, on_space) or "")
    assert storage.storage_warning(None, {}) is None  # off a Space the disk is the user's own
    assert storage.storage_warning(tmp_path, on_space) is None
    assert "cannot be written" in (storage.storage_warning(tmp_path / "not-mounted", on_space) or "")


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
