"""CLIP models: load an open_clip model by name + pretrained source, encode images and texts."""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from carmatch.embedding.fast_path import FastPath, cpu_without_torch, fast_path_for, prepare_record, weights_file_of
from carmatch.embedding.gpu_calls import image_features, text_features
from carmatch.embedding.model_cache import ModelCache, ModelRecord, default_cache_dir
from carmatch.embedding.onnx_towers import preprocess_image
from carmatch.embedding.weights import (  # noqa: F401  (re-exported: callers import them from here)
    NETWORK_PROBE_SECONDS,
    PRETRAINED_NONE,
    TRY_RANDOM_WEIGHTS,
    HubWeights,
    ModelSpec,
    cached_weights,
    fetch_weights,
    first_line,
    hub_reachable,
    hub_weights,
    load_error_help,
    weights_source,
)
from carmatch.errors import ConfigError, ModelLoadError
from carmatch.images import model_input_side

log = logging.getLogger(__name__)

RANDOM_INIT_SEED = 0


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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ConfigError(f"CARMATCH_MODEL points to {path}, which is not valid JSON: {first_line(exc)}") from exc
    required = ("embed_dim", "vision_cfg", "text_cfg")
    missing = [key for key in required if not isinstance(config, dict) or key not in config]
    if missing:
        raise ConfigError(
            f"CARMATCH_MODEL points to {path}, which is not an open_clip model config (missing {', '.join(missing)})"
        )


def _misfit_error(spec: ModelSpec, checkpoint: str, exc: BaseException) -> ModelLoadError:
    return ModelLoadError(
        f"The checkpoint {checkpoint} does not fit the model config {spec.name} ({first_line(exc)}); "
        "set CARMATCH_MODEL to the config it was trained with, or CARMATCH_PRETRAINED to a checkpoint of this model."
    )


def _unreadable_checkpoint(checkpoint: str | None, exc: BaseException) -> ModelLoadError:
    return ModelLoadError(
        f"CARMATCH_PRETRAINED {checkpoint} is empty or not a model checkpoint ({type(exc).__name__}: "
        f"{first_line(exc) or 'no data'}); point it at a .pt/.bin/.safetensors checkpoint, or an open_clip tag."
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
    """A CLIP model that turns images and texts into L2-normalised vectors.

    The torch model is the source of truth; single queries go through the fast path (ONNX towers,
    see carmatch.embedding.fast_path) when the model has one. An embedder made from a cache record
    loads the torch model only when something needs it (a batch, training, no fast path).
    """

    def __init__(
        self, model: Any, preprocess: Callable, tokenizer: Any, spec: ModelSpec, device: str, hash_: str | None = None
    ):
        self._parts: tuple[Any, Any, Any] | None = (model, preprocess, tokenizer)
        self._loader: Callable[[], tuple[Any, Any, Any]] | None = None
        self._load_lock = threading.Lock()
        self.fast: FastPath | None = None
        self.export_thread: threading.Thread | None = None  # a background export of the fast path, if any
        self.spec = spec
        self.device = device
        self.weights_hash = hash_ or weights_hash(model)
        self.context_length = int(getattr(tokenizer, "context_length", 77) or 77)
        self.dim = int(self._probe_dim())

    @classmethod
    def lazy(
        cls,
        spec: ModelSpec,
        device: str,
        record: ModelRecord,
        fast: FastPath,
        loader: Callable[[], tuple[Any, Any, Any]],
    ) -> Embedder:
        """An embedder known from its cache record; ``loader`` gives (model, preprocess, tokenizer) when needed."""
        self = cls.__new__(cls)
        self._parts, self._loader, self._load_lock, self.fast = None, loader, threading.Lock(), fast
        self.export_thread = None
        self.spec, self.device, self.weights_hash = spec, device, record.weights_hash
        self.context_length, self.dim = record.context_length, record.dim
        return self

    def _torch_parts(self) -> tuple[Any, Any, Any]:
        parts = getattr(self, "_parts", None)
        if parts is not None or getattr(self, "_loader", None) is None:
            return parts or (None, None, None)
        with self._load_lock:
            if self._parts is None and self._loader is not None:
                self._parts = self._loader()
            return self._parts or (None, None, None)

    def _set_part(self, slot: int, value: Any) -> None:
        parts = list(getattr(self, "_parts", None) or (None, None, None))
        parts[slot] = value
        self._parts = (parts[0], parts[1], parts[2])

    @property
    def model(self) -> Any:
        """The torch model (loaded now if this embedder came from the cache)."""
        return self._torch_parts()[0]

    @model.setter
    def model(self, value: Any) -> None:
        self._set_part(0, value)

    @property
    def preprocess(self) -> Any:
        """open_clip's image transform (PIL image -> tensor)."""
        return self._torch_parts()[1]

    @preprocess.setter
    def preprocess(self, value: Any) -> None:
        self._set_part(1, value)

    @property
    def tokenizer(self) -> Any:
        """open_clip's tokenizer (texts -> token tensor)."""
        return self._torch_parts()[2]

    @tokenizer.setter
    def tokenizer(self, value: Any) -> None:
        self._set_part(2, value)

    @property
    def image_side(self) -> int | None:
        """The side of the model's image input, from the fast path's numbers when it has them (no torch load)."""
        fast = getattr(self, "fast", None)
        if fast is not None and fast.preprocess:
            return max(int(fast.preprocess["resize"]), *(int(side) for side in fast.preprocess["crop"]))
        return model_input_side(self.model)

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

    def preprocess_images(self, images: Sequence[Image.Image]) -> Any:
        """Turn RGB images into the model's input tensor (CPU work, safe in a worker thread)."""
        import torch

        return torch.stack([self.preprocess(img) for img in images])

    def encode_image_tensor(self, batch: Any) -> np.ndarray:
        """Embed an already preprocessed batch; returns (N, dim) float32 unit vectors."""
        return image_features(self.model, self.device, batch)

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Embed RGB images; returns an (N, dim) float32 array of unit vectors."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        fast = getattr(self, "fast", None)
        if fast is not None and fast.towers is not None and len(images) == 1:  # a single query
            if fast.preprocess is not None:
                pixels = preprocess_image(images[0], fast.preprocess)[None]
            else:
                pixels = np.asarray(self.preprocess_images(images))
            return fast.towers.encode_image(pixels)
        out = [
            self.encode_image_tensor(self.preprocess_images(images[start : start + batch_size]))
            for start in range(0, len(images), batch_size)
        ]
        return np.concatenate(out, axis=0)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts (truncated to the model's context); returns (N, dim) float32 unit vectors."""
        if not texts:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        fast = getattr(self, "fast", None)
        if fast is not None and fast.towers is not None:
            tokens = fast.tokenizer(texts) if fast.tokenizer is not None else np.asarray(self.tokenizer(list(texts)))
            return fast.towers.encode_text(tokens)
        return text_features(self.model, self.device, self.tokenizer(list(texts)))

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` takes, start and end tokens included."""
        fast = getattr(self, "fast", None)
        tokenizer = fast.tokenizer if fast is not None and fast.tokenizer is not None else self.tokenizer
        encode = getattr(tokenizer, "encode", None)
        if callable(encode):
            try:
                return len(encode(text)) + 2
            except (TypeError, ValueError):
                pass
        tokens = tokenizer([text])[0]
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
    except (EOFError, IndexError, pickle.UnpicklingError, UnicodeDecodeError) as exc:  # empty or garbage file
        raise _unreadable_checkpoint(weights, exc) from exc
    except Exception as exc:  # huggingface_hub raises its own hierarchy for offline / HTTP failures
        if type(exc).__module__.startswith(("huggingface_hub", "requests", "urllib3", "httpx")):
            raise ModelLoadError(load_error_help(spec, exc)) from exc
        if type(exc).__module__.startswith("safetensors"):  # a .safetensors file that is not one
            raise _unreadable_checkpoint(weights, exc) from exc
        raise
    return model, transform


def _load_parts(spec: ModelSpec, device: str, offline: bool) -> tuple[Any, Any, Any, str, str | None]:
    """The torch model, image transform and tokenizer, the device and the weights argument open_clip was given."""
    import open_clip

    arch = register_model_config(spec.name)
    if arch not in open_clip.list_models():
        raise ConfigError(
            f"Unknown CLIP model '{spec.name}'. Use an open_clip model name (python -c "
            "'import open_clip; print(open_clip.list_models())') or a path to a model-config JSON."
        )
    dev = resolve_device(device)
    weights, preprocess = weights_source(spec, arch, offline)
    model, transform = _create_model(spec, arch, weights, preprocess, dev)
    model.eval()
    tokenizer = open_clip.get_tokenizer(arch)
    log.info("Loaded CLIP %s (%s) on %s", arch, spec.pretrained, dev)
    return model, transform, tokenizer, dev, weights


def _lazy_loader(spec: ModelSpec, record: ModelRecord, offline: bool) -> Callable[[], tuple[Any, Any, Any]]:
    """Loads the torch parts of a model known from its record, refusing a checkpoint changed since."""

    def load() -> tuple[Any, Any, Any]:
        if not record.current():
            raise ModelLoadError(
                f"The checkpoint of {spec.arch} ({spec.pretrained}) changed since carmatch started; restart it."
            )
        model, transform, tokenizer, _, _ = _load_parts(spec, "cpu", offline)
        return model, transform, tokenizer

    return load


def load_clip(
    name: str,
    pretrained: str,
    device: str = "auto",
    offline: bool = False,
    cache_dir: Path | None = None,
    background_export: bool = False,
) -> Embedder:
    """Load an open_clip model; ``pretrained`` is a tag, a checkpoint path or ``none``.

    A Hub tag's weights come from the local cache, else are downloaded once; with downloads off, or
    when the Hub does not answer within NETWORK_PROBE_SECONDS, it fails at once with what to do.
    ``cache_dir`` (default: carmatch.embedding.model_cache.default_cache_dir) keeps each checkpoint's
    weights hash and its verified ONNX towers: a CPU start with an unchanged checkpoint imports no
    torch until something needs the torch model. With ``background_export`` (the app's start-up), a
    checkpoint not yet in the cache answers on torch at once while its towers are exported and
    verified in a background thread (``embedder.export_thread``); queries switch when they are ready.
    """
    spec = ModelSpec(name, pretrained)
    folder = cache_dir if cache_dir is not None else default_cache_dir()
    cache = ModelCache(folder) if folder is not None else None
    record = cache.lookup(spec) if cache is not None else None
    if cache is not None and record is not None and cpu_without_torch(device) and (record.towers or record.problem):
        log.info("CLIP %s (%s) from the model cache: weights %s", spec.arch, pretrained, record.weights_hash[:12])
        return Embedder.lazy(spec, "cpu", record, fast_path_for(record, cache), _lazy_loader(spec, record, offline))
    model, transform, tokenizer, dev, weights = _load_parts(spec, device, offline)
    embedder = Embedder(model, transform, tokenizer, spec, dev, record.weights_hash if record is not None else None)
    checkpoint = weights_file_of(weights)
    if cache is None or dev != "cpu" or (weights is not None and checkpoint is None):
        return embedder  # no cache, a GPU (torch is fast there), or weights open_clip fetched by URL (no file)
    if record is None or (record.towers is None and record.problem is None):
        identity = (embedder.weights_hash, embedder.dim, embedder.context_length)
        prepare = (spec, (model, transform, tokenizer), identity, checkpoint, cache)
        if background_export:
            embedder.export_thread = _export_in_background(embedder, prepare)
            return embedder
        record = prepare_record(*prepare)
    embedder.fast = fast_path_for(record, cache)
    return embedder


def load_clip_torch(name: str, pretrained: str, device: str = "auto", offline: bool = False) -> Embedder:
    """The torch model alone (no model cache, no ONNX towers): what a batch worker on another machine loads.

    Its weights hash is computed from the weights loaded, so a worker whose checkpoint differs from
    the driver's shows another ``model_key``.
    """
    spec = ModelSpec(name, pretrained)
    model, transform, tokenizer, dev, _ = _load_parts(spec, device, offline)
    return Embedder(model, transform, tokenizer, spec, dev)


def _export_in_background(embedder: Embedder, prepare: tuple[Any, ...]) -> threading.Thread:
    """Export and verify ``embedder``'s ONNX towers in a thread; single queries switch to them when ready."""

    def export() -> None:
        try:
            record = prepare_record(*prepare)
            embedder.fast = fast_path_for(record, prepare[-1])
            log.info("Single queries of %s run on ONNX Runtime from now on", embedder.spec.arch)
        except Exception:  # the torch path keeps answering; the next start tries again
            log.exception("Exporting the ONNX towers failed; queries stay on torch")

    thread = threading.Thread(target=export, name="carmatch-onnx-export", daemon=True)
    thread.start()
    return thread
