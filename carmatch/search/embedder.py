"""CLIP models: load an open_clip model by name + pretrained source, encode images and texts."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

from carmatch.errors import ConfigError, ModelLoadError
from carmatch.search.vectors import unit_rows

log = logging.getLogger(__name__)

PRETRAINED_NONE = "none"
RANDOM_INIT_SEED = 0
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


def register_model_config(name: str) -> str:
    """Make a model-config JSON known to open_clip; return the architecture name to create."""
    import open_clip

    if not name.endswith(".json"):
        return name
    path = Path(name).expanduser()
    if not path.is_file():
        raise ConfigError(f"CARMATCH_MODEL points to {path}, which does not exist")
    _check_model_config(path)
    open_clip.add_model_config(path)
    return path.stem


def _check_model_config(path: Path) -> None:
    """Refuse a model-config JSON that does not parse or lacks open_clip's required keys."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"CARMATCH_MODEL points to {path}, which is not valid JSON: {_first_line(exc)}") from exc
    required = ("embed_dim", "vision_cfg", "text_cfg")
    missing = [key for key in required if not isinstance(config, dict) or key not in config]
    if missing:
        raise ConfigError(
            f"CARMATCH_MODEL points to {path}, which is not an open_clip model config (missing {', '.join(missing)})"
        )


def _is_local_checkpoint(pretrained: str) -> bool:
    return pretrained.endswith((".pt", ".pth", ".bin", ".safetensors", ".npz")) or Path(pretrained).exists()


def load_error_help(spec: ModelSpec, exc: BaseException) -> str:
    """One message for a model that failed to load: what went wrong and the one thing to do about it."""
    return (
        f"Could not load CLIP weights '{spec.pretrained}' for model '{spec.arch}': {_first_line(exc)}. "
        "The first run downloads them from the Hugging Face Hub, which needs internet access. "
        "Without internet, download them elsewhere and set CARMATCH_PRETRAINED to the local "
        f"checkpoint file (.pt/.bin/.safetensors), or try carmatch with random weights: {TRY_RANDOM_WEIGHTS}"
    )


def _first_line(exc: BaseException) -> str:
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


def _misfit_error(spec: ModelSpec, checkpoint: str, exc: BaseException) -> ModelLoadError:
    return ModelLoadError(
        f"The checkpoint {checkpoint} does not fit the model config {spec.name} ({_first_line(exc)}); "
        "set CARMATCH_MODEL to the config it was trained with, or CARMATCH_PRETRAINED to a checkpoint of this model."
    )


def weights_hash(model: Any) -> str:
    """A stable hash of a model's weights: the same weights give the same hash."""
    import torch

    digest = hashlib.blake2b(digest_size=16)
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        arr = tensor.detach().to("cpu").contiguous()
        digest.update(str(arr.dtype).encode())
        digest.update(arr.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class Embedder:
    """A loaded CLIP model that turns images and texts into L2-normalised vectors."""

    def __init__(self, model: Any, preprocess: Callable, tokenizer: Any, spec: ModelSpec, device: str):
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.spec = spec
        self.device = device
        self.weights_hash = weights_hash(model)
        self.context_length = int(getattr(tokenizer, "context_length", 77) or 77)
        self.dim = int(self._probe_dim())

    @property
    def model_key(self) -> str:
        """Identity of this model's embedding space: architecture plus weights hash."""
        return f"{self.spec.arch}@{self.weights_hash}"

    def describe(self) -> dict[str, str]:
        """What to record in a manifest about the model."""
        return {
            "model": self.spec.name,
            "arch": self.spec.arch,
            "pretrained": self.spec.pretrained,
            "weights_hash": self.weights_hash,
            "model_key": self.model_key,
        }

    def _probe_dim(self) -> int:
        proj = getattr(self.model, "text_projection", None)
        if proj is not None and hasattr(proj, "shape"):
            return int(proj.shape[-1])
        return int(self.encode_texts(["a car"]).shape[1])

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        import torch

        with torch.inference_mode():
            if self.device.startswith("cuda"):
                with torch.autocast("cuda", dtype=torch.float16):
                    yield
            else:
                yield

    def preprocess_images(self, images: Sequence[Image.Image]) -> Any:
        """Turn RGB images into the model's input tensor (CPU work, safe in a worker thread)."""
        import torch

        return torch.stack([self.preprocess(img) for img in images])

    def encode_image_tensor(self, batch: Any) -> np.ndarray:
        """Embed an already preprocessed batch; returns (N, dim) float32 unit vectors."""
        with self._inference():
            feats = self.model.encode_image(batch.to(self.device))
        return unit_rows(feats.float().cpu().numpy())

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Embed RGB images; returns an (N, dim) float32 array of unit vectors."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = [
            self.encode_image_tensor(self.preprocess_images(images[start : start + batch_size]))
            for start in range(0, len(images), batch_size)
        ]
        return np.concatenate(out, axis=0)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts (truncated to the model's context); returns (N, dim) float32 unit vectors."""
        if not texts:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        tokens = self.tokenizer(list(texts))
        with self._inference():
            feats = self.model.encode_text(tokens.to(self.device))
        return unit_rows(feats.float().cpu().numpy())

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` takes, start and end tokens included."""
        encode = getattr(self.tokenizer, "encode", None)
        if callable(encode):
            try:
                return len(encode(text)) + 2
            except (TypeError, ValueError):
                pass
        tokens = self.tokenizer([text])[0]
        return int((tokens != 0).sum())


def resolve_device(device: str) -> str:
    """Turn ``auto`` into cuda when available, else cpu."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        log.warning("CARMATCH_DEVICE=%s but no CUDA device is available; using cpu", device)
        return "cpu"
    return device


def _weights_source(spec: ModelSpec, arch: str, offline: bool) -> tuple[str | None, dict[str, Any]]:
    """(checkpoint path or tag to hand open_clip, preprocess overrides); None for random weights."""
    import open_clip

    pretrained = spec.pretrained
    if not pretrained or pretrained.lower() == PRETRAINED_NONE:
        log.warning("CARMATCH_PRETRAINED=none: %s has random weights; search results mean nothing", arch)
        return None, {}
    if _is_local_checkpoint(pretrained):
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


def _create_model(spec: ModelSpec, arch: str, weights: str | None, preprocess: dict[str, Any], dev: str) -> Any:
    """open_clip's model and preprocessing; a checkpoint that does not fit the config is one ModelLoadError."""
    import open_clip
    import torch

    try:
        # Untrained weights are seeded, so `none` names one model: the same in every process, and
        # an index built with it stays searchable. The caller's random state is left untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model, _, transform = open_clip.create_model_and_transforms(
                arch, pretrained=weights, device=dev, **preprocess
            )
    except (AssertionError, RuntimeError, KeyError, ValueError) as exc:  # state-dict shapes or keys disagree
        if weights is not None and Path(weights).is_file():
            raise _misfit_error(spec, weights, exc) from exc
        raise ModelLoadError(load_error_help(spec, exc)) from exc
    except OSError as exc:
        raise ModelLoadError(load_error_help(spec, exc)) from exc
    except Exception as exc:  # huggingface_hub raises its own hierarchy for offline / HTTP failures
        if type(exc).__module__.startswith(("huggingface_hub", "requests", "urllib3", "httpx")):
            raise ModelLoadError(load_error_help(spec, exc)) from exc
        raise
    return model, transform


def load_clip(name: str, pretrained: str, device: str = "auto", offline: bool = False) -> Embedder:
    """Load an open_clip model; ``pretrained`` is a tag, a checkpoint path or ``none``.

    A Hub tag's weights come from the local cache, else are downloaded once; with downloads off, or
    when the Hub does not answer within NETWORK_PROBE_SECONDS, it fails at once with what to do.
    """
    import open_clip

    spec = ModelSpec(name, pretrained)
    arch = register_model_config(name)
    if arch not in open_clip.list_models():
        raise ConfigError(
            f"Unknown CLIP model '{name}'. Use an open_clip model name (python -c "
            "'import open_clip; print(open_clip.list_models())') or a path to a model-config JSON."
        )
    dev = resolve_device(device)
    weights, preprocess = _weights_source(spec, arch, offline)
    model, transform = _create_model(spec, arch, weights, preprocess, dev)
    model.eval()
    tokenizer = open_clip.get_tokenizer(arch)
    log.info("Loaded CLIP %s (%s) on %s", arch, pretrained, dev)
    return Embedder(model, transform, tokenizer, spec, dev)
