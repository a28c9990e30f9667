"""Where a CLIP model's weights come from: a local checkpoint, the Hub cache, or one download."""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from carmatch.errors import ConfigError, ModelLoadError

log = logging.getLogger(__name__)

PRETRAINED_NONE = "none"
NETWORK_PROBE_SECONDS = 3.0  # how long "is the Hub reachable?" may take before carmatch says it is not
HUB_WEIGHTS_NAME = "open_clip_pytorch_model.bin"  # open_clip's default file in a Hub repository
HUB_SAFE_WEIGHTS_NAME = "open_clip_model.safetensors"
TRY_RANDOM_WEIGHTS = "CARMATCH_PRETRAINED=none make run (search results are then meaningless)."


@dataclass(frozen=True)
class ModelSpec:
    """Which model to load: an open_clip architecture plus a pretrained source."""

    name: str  # open_clip model name, or path to a model-config JSON
    pretrained: str  # open_clip tag, local checkpoint path, or "none"

    @property
    def arch(self) -> str:
        """The open_clip architecture name (a config file's stem for a JSON path)."""
        if self.name.endswith(".json"):
            return Path(self.name).stem
        return self.name


def is_local_checkpoint(pretrained: str) -> bool:
    return pretrained.endswith((".pt", ".pth", ".bin", ".safetensors", ".npz")) or Path(pretrained).exists()


def load_error_help(spec: ModelSpec, exc: BaseException) -> str:
    """One message for a model that failed to load: what went wrong and the one thing to do about it."""
    return (
        f"Could not load CLIP weights '{spec.pretrained}' for model '{spec.arch}': {first_line(exc)}. "
        "The first run downloads them from the Hugging Face Hub, which needs internet access. "
        "Without internet, download them elsewhere and set CARMATCH_PRETRAINED to the local "
        f"checkpoint file (.pt/.bin/.safetensors), or try carmatch with random weights: {TRY_RANDOM_WEIGHTS}"
    )


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].rstrip(".")


@dataclass(frozen=True)
class HubWeights:
    """Where a pretrained tag's weights live on the Hugging Face Hub, and how to preprocess for them."""

    repo_id: str
    filenames: tuple[str, ...]  # preferred first: a .safetensors twin, then the file open_clip names
    preprocess: dict[str, Any]  # image_mean / image_std / image_interpolation / image_resize_mode

    @property
    def url(self) -> str:
        """The repository's page on the Hub."""
        return f"https://huggingface.co/{self.repo_id}"


def hub_weights(arch: str, tag: str) -> HubWeights | None:
    """The Hub repository and file of an open_clip pretrained tag (None when the tag is not on the Hub)."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg or not cfg.get("hf_hub") or cfg.get("file"):
        return None
    repo_id, filename = os.path.split(str(cfg["hf_hub"]))  # "org/repo/" or "org/repo/file.bin"
    if not filename:
        names = [HUB_SAFE_WEIGHTS_NAME, HUB_WEIGHTS_NAME]
    elif filename.endswith((".bin", ".pth")):
        names = [filename[:-4] + ".safetensors", filename]
    else:
        names = [filename]
    keys = {"mean": "image_mean", "std": "image_std", "interpolation": "image_interpolation"}
    keys["resize_mode"] = "image_resize_mode"
    preprocess = {arg: cfg[key] for key, arg in keys.items() if cfg.get(key) is not None}
    return HubWeights(repo_id, tuple(names), preprocess)


def cached_weights(hub: HubWeights) -> str | None:
    """The local path of the tag's weights when the Hub cache already holds them."""
    from huggingface_hub import try_to_load_from_cache

    for name in hub.filenames:
        found = try_to_load_from_cache(hub.repo_id, name)
        if isinstance(found, str) and Path(found).is_file():
            return found
    return None


def hub_reachable(timeout_s: float = NETWORK_PROBE_SECONDS) -> bool:
    """True when a TCP connection to the Hugging Face Hub opens within ``timeout_s`` seconds, name lookup included."""
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    return host_reachable(host, port, timeout_s)


def host_reachable(host: str, port: int, timeout_s: float = NETWORK_PROBE_SECONDS) -> bool:
    """True when a TCP connection to ``host:port`` opens within ``timeout_s`` seconds, name lookup included."""
    answered: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                answered.append(True)
        except OSError:
            answered.append(False)

    # The connect timeout does not cover a DNS lookup stuck on an unreachable resolver: bound both.
    thread = threading.Thread(target=probe, name="carmatch-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(answered and answered[0])


def _no_weights_error(spec: ModelSpec, hub: HubWeights, why: str) -> ModelLoadError:
    return ModelLoadError(
        f"The weights '{spec.pretrained}' of CLIP model '{spec.arch}' are not downloaded yet and {why}. "
        f"Either download {' or '.join(hub.filenames)} from {hub.url} (Files tab) on a machine with internet "
        f"and set CARMATCH_PRETRAINED=/path/to/{hub.filenames[0]}, or try carmatch with random weights: "
        f"{TRY_RANDOM_WEIGHTS}"
    )


def fetch_weights(spec: ModelSpec, hub: HubWeights, offline: bool) -> str:
    """The local file of a Hub tag's weights: from the cache, else downloaded once; fails fast offline."""
    found = cached_weights(hub)
    if found is not None:
        return found
    if offline:
        raise _no_weights_error(spec, hub, "downloads are off (CARMATCH_OFFLINE or HF_HUB_OFFLINE)")
    if not hub_reachable():
        raise _no_weights_error(
            spec, hub, f"the Hugging Face Hub cannot be reached (no answer within {NETWORK_PROBE_SECONDS:g} s)"
        )
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    log.info("Downloading %s from %s (once; later runs use the cache)", hub.filenames[-1], hub.url)
    for name in hub.filenames:
        try:
            return str(hf_hub_download(hub.repo_id, name))
        except EntryNotFoundError:
            continue  # no .safetensors twin: take the file open_clip names
        except Exception as exc:  # huggingface_hub / httpx raise many types for network failures
            raise ModelLoadError(load_error_help(spec, exc)) from exc
    raise ModelLoadError(f"{hub.url} holds none of {', '.join(hub.filenames)}.")


def weights_source(spec: ModelSpec, arch: str, offline: bool) -> tuple[str | None, dict[str, Any]]:
    """(checkpoint path or tag to hand open_clip, preprocess overrides); None for random weights."""
    import open_clip

    pretrained = spec.pretrained
    if not pretrained or pretrained.lower() == PRETRAINED_NONE:
        log.warning("CARMATCH_PRETRAINED=none: %s has random weights; search results mean nothing", arch)
        return None, {}
    if is_local_checkpoint(pretrained):
        if not Path(pretrained).expanduser().is_file():
            raise ModelLoadError(f"Checkpoint {pretrained} does not exist.")
        return str(Path(pretrained).expanduser()), {}
    if pretrained not in open_clip.list_pretrained_tags_by_model(arch):
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
        raise ConfigError(f"'{pretrained}' is not a pretrained tag of {arch} (known: {tags}).")
    hub = hub_weights(arch, pretrained)
    if hub is not None:
        return fetch_weights(spec, hub, offline), hub.preprocess
    if offline:
        raise ModelLoadError(load_error_help(spec, OSError("downloads are off (CARMATCH_OFFLINE or HF_HUB_OFFLINE)")))
    return pretrained, {}  # a tag open_clip downloads from a URL
