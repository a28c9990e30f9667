"""CLIP models: load an open_clip model by name + pretrained source, encode images and texts."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from carmatch.errors import ConfigError, ModelLoadError
from carmatch.search.vectors import unit_rows

log = logging.getLogger(__name__)

PRETRAINED_NONE = "none"
RANDOM_INIT_SEED = 0


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
    open_clip.add_model_config(path)
    return path.stem


def _is_local_checkpoint(pretrained: str) -> bool:
    return pretrained.endswith((".pt", ".pth", ".bin", ".safetensors", ".npz")) or Path(pretrained).exists()


def _load_error_help(spec: ModelSpec, exc: BaseException) -> str:
    return (
        f"Could not load CLIP weights '{spec.pretrained}' for model '{spec.arch}': {exc}. "
        "The first run downloads them from the Hugging Face Hub, which needs internet access. "
        "Without internet, download them elsewhere and set CARMATCH_PRETRAINED to the local "
        "checkpoint file (.pt/.bin/.safetensors), or set CARMATCH_PRETRAINED=none to run "
        "with untrained weights (search results will be meaningless)."
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


def load_clip(name: str, pretrained: str, device: str = "auto", offline: bool = False) -> Embedder:
    """Load an open_clip model; ``pretrained`` is a tag, a checkpoint path or ``none``."""
    import open_clip

    spec = ModelSpec(name, pretrained)
    arch = register_model_config(name)
    if arch not in open_clip.list_models():
        raise ConfigError(
            f"Unknown CLIP model '{name}'. Use an open_clip model name (python -c "
            "'import open_clip; print(open_clip.list_models())') or a path to a model-config JSON."
        )
    dev = resolve_device(device)
    weights: str | None = None
    if pretrained and pretrained.lower() != PRETRAINED_NONE:
        weights = pretrained
        if _is_local_checkpoint(pretrained):
            if not Path(pretrained).expanduser().is_file():
                raise ModelLoadError(f"Checkpoint {pretrained} does not exist.")
            weights = str(Path(pretrained).expanduser())
        elif pretrained not in open_clip.list_pretrained_tags_by_model(arch):
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
            raise ConfigError(f"'{pretrained}' is not a pretrained tag of {arch} (known: {tags}).")
    else:
        log.warning("CARMATCH_PRETRAINED=none: %s has random weights; search results mean nothing", arch)
    if offline:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import torch

        # Untrained weights are seeded, so `none` names one model: the same in every process, and
        # an index built with it stays searchable. The caller's random state is left untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=weights, device=dev)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        raise ModelLoadError(_load_error_help(spec, exc)) from exc
    except Exception as exc:  # huggingface_hub raises its own hierarchy for offline / HTTP failures
        if type(exc).__module__.startswith(("huggingface_hub", "requests", "urllib3", "httpx")):
            raise ModelLoadError(_load_error_help(spec, exc)) from exc
        raise
    model.eval()
    tokenizer = open_clip.get_tokenizer(arch)
    log.info("Loaded CLIP %s (%s) on %s", arch, pretrained, dev)
    return Embedder(model, preprocess, tokenizer, spec, dev)
