"""Loading CLIP weights fails fast and once: offline, no network, a checkpoint that does not fit."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from carmatch.embedding import embedder as embedder_module
from carmatch.embedding.embedder import NETWORK_PROBE_SECONDS, fetch_weights, hub_reachable, hub_weights, load_clip
from carmatch.errors import ModelLoadError
from tests.conftest import TINY_CONFIG

DEFAULT = ("ViT-B-32-256", "datacomp_s34b_b86k")
HUB_REPO = "laion/CLIP-ViT-B-32-256x256-DataComp-s34B-b86K"


@pytest.fixture
def empty_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, and any download attempt fails the test."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))

    def no_download(*args: object, **kwargs: object) -> str:
        raise AssertionError("no download may be attempted")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", no_download)
    return cache


def _no_network(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every TCP connection fails at once; returns the timeouts asked for."""
    timeouts: list[float] = []

    def refuse(address: tuple[str, int], timeout: float | None = None, *args: object, **kwargs: object) -> None:
        timeouts.append(float(timeout or 0))
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return timeouts


def test_default_tag_names_its_hub_repository_and_files() -> None:
    hub = hub_weights(*DEFAULT)
    assert hub is not None and hub.repo_id == HUB_REPO
    assert hub.filenames == ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
    assert hub.preprocess["image_interpolation"] == "bicubic"


def test_offline_without_cached_weights_fails_at_once_with_the_fix(
    empty_hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeouts = _no_network(monkeypatch)
    with pytest.raises(ModelLoadError) as caught:
        load_clip(*DEFAULT, device="cpu", offline=True)
    message = str(caught.value)
    assert "\n" not in message and "downloads are off" in message
    assert f"https://huggingface.co/{HUB_REPO}" in message and "open_clip_model.safetensors" in message
    assert "CARMATCH_PRETRAINED=none make run" in message
    assert timeouts == []  # offline: not even a probe


def test_no_network_is_detected_by_one_short_probe_not_retried_downloads(
    empty_hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeouts = _no_network(monkeypatch)
    with pytest.raises(ModelLoadError, match="cannot be reached") as caught:
        load_clip(*DEFAULT, device="cpu", offline=False)
    assert timeouts == [NETWORK_PROBE_SECONDS] and NETWORK_PROBE_SECONDS <= 5
    assert "CARMATCH_PRETRAINED=/path/to/open_clip_model.safetensors" in str(caught.value)


def test_probe_reports_a_closed_port_as_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port nobody listens on: bound, then closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert hub_reachable(1.0) is False


def test_cached_weights_are_used_without_asking_the_network(
    empty_hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeouts = _no_network(monkeypatch)
    snapshot = empty_hub_cache / f"models--{HUB_REPO.replace('/', '--')}" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"weights")
    refs = snapshot.parent.parent / "refs"
    refs.mkdir()
    (refs / "main").write_text("a" * 40)
    hub = hub_weights(*DEFAULT)
    assert hub is not None
    found = fetch_weights(embedder_module.ModelSpec(*DEFAULT), hub, offline=False)
    assert Path(found) == snapshot / "open_clip_model.safetensors" and timeouts == []


def test_checkpoint_that_does_not_fit_the_config_is_one_line_naming_both(
    tiny_model: tuple[str, str], tmp_path: Path
) -> None:
    other = json.loads(json.dumps(TINY_CONFIG))
    other["text_cfg"]["width"] = 48
    config = tmp_path / "other-tiny.json"
    config.write_text(json.dumps(other))
    with pytest.raises(ModelLoadError) as caught:
        load_clip(str(config), tiny_model[1], "cpu")
    message = str(caught.value)
    assert "\n" not in message and len(message) < 600
    assert f"checkpoint {tiny_model[1]} does not fit the model config {config}" in message


def test_a_download_error_ending_in_a_full_stop_reads_as_one_sentence(tmp_path: Path) -> None:
    spec = embedder_module.ModelSpec(*DEFAULT)
    text = embedder_module.load_error_help(spec, OSError("Make sure your Internet connection is on."))
    assert "is on. The first run" in text and ".." not in text


def test_a_name_lookup_that_hangs_still_ends_the_probe_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    release = threading.Event()

    def stuck(*args: object, **kwargs: object) -> None:
        release.wait(30)  # a resolver that never answers (released when the test ends)
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", stuck)
    try:
        assert hub_reachable(0.05) is False
    finally:
        release.set()
