"""The fast query path of a CLIP model: ONNX towers, the torch-free tokenizer and image preprocessing.

:func:`prepare_record` runs once per checkpoint, right after the torch model loads (first start,
activation of a fine-tuned model): it checks the torch-free tokenizer and preprocessing against
open_clip's, exports and verifies the ONNX towers on a CPU, and returns the cache record. Later
starts rebuild the fast path from that record alone (:func:`fast_path_for`), without torch.
Anything that fails leaves that part on torch, with the reason logged once.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from carmatch.embedding.clip_tokenizer import ClipTokenizer, matches_open_clip, vocab_path
from carmatch.embedding.model_cache import FileStamp, ModelCache, ModelRecord, config_stamp
from carmatch.embedding.onnx_towers import (
    OnnxTowers,
    TowerExportError,
    export_towers,
    onnx_missing,
    preprocess_image,
    preprocess_params,
)
from carmatch.embedding.weights import ModelSpec

log = logging.getLogger(__name__)

GPU_MARKERS = ("/proc/driver/nvidia", "/dev/kfd")  # an NVIDIA or ROCm driver: "auto" may pick a GPU


@dataclass
class FastPath:
    """Whichever fast parts a model has: ONNX towers, the torch-free tokenizer, numpy preprocessing."""

    towers: OnnxTowers | None = None
    tokenizer: ClipTokenizer | None = None
    preprocess: dict[str, Any] | None = None


def cpu_without_torch(device: str) -> bool:
    """True when ``device`` surely means the CPU, so the cache may be used before torch is imported."""
    if device == "cpu":
        return True
    return device == "auto" and not any(os.path.exists(marker) for marker in GPU_MARKERS)


def fast_path_for(record: ModelRecord, cache: ModelCache) -> FastPath:
    """The fast parts a cache record vouches for, loaded without torch."""
    path = vocab_path() if record.tokenizer else None
    return FastPath(
        towers=OnnxTowers(cache.towers_dir(record.towers)) if record.towers else None,
        tokenizer=ClipTokenizer(path, record.context_length) if path else None,
        preprocess=record.preprocess,
    )


def _tokenizer_check(tokenizer: Any, context_length: int) -> bool:
    path = vocab_path()
    if path is None or type(tokenizer).__name__ != "SimpleTokenizer":
        return False
    return matches_open_clip(ClipTokenizer(path, context_length), tokenizer)


def _preprocess_check(transform: Any) -> dict[str, Any] | None:
    """The transform's numbers when the numpy preprocessing gives its output (to 1e-5) on drawn images."""
    from PIL import Image

    params = preprocess_params(transform)
    if params is None:
        return None
    rng = np.random.default_rng(0)
    for size in ((97, 61), (64, 128), (300, 200)):
        image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        expected = np.asarray(transform(image))
        if float(np.abs(preprocess_image(image, params) - expected).max()) > 1e-5:
            return None
    return params


def prepare_record(
    spec: ModelSpec,
    parts: tuple[Any, Any, Any],
    identity: tuple[str, int, int],
    weights_file: str | None,
    cache: ModelCache,
) -> ModelRecord:
    """Check and export the fast parts of a model freshly loaded on the CPU; its record (also written to ``cache``).

    ``parts`` is (model, transform, tokenizer); ``identity`` is (weights hash, dim, context length).
    """
    model, transform, tokenizer = parts
    hash_, dim, context_length = identity
    record = ModelRecord(
        weights_hash=hash_,
        dim=dim,
        context_length=context_length,
        weights=FileStamp.of(weights_file) if weights_file else None,
        config=config_stamp(spec),
        tokenizer=_tokenizer_check(tokenizer, context_length),
        preprocess=_preprocess_check(transform),
    )
    record.problem = onnx_missing()
    if record.problem is None:
        name = f"{spec.arch}@{hash_}"
        texts = ["a photo of a red car", "dark blue hatchback", "a long description that fills the context " * 12]
        tokens = np.asarray(tokenizer(texts))
        size = getattr(model.visual, "image_size", 224)
        height, width = (size, size) if isinstance(size, int) else size
        try:
            worst = export_towers(model, tokens, (3, int(height), int(width)), cache.towers_dir(name))
            record.towers = name
            log.info("ONNX towers of %s ready (largest difference from torch %.1e)", name, worst)
        except (TowerExportError, OSError) as exc:
            record.problem = str(exc)
    if record.problem:
        log.warning("Single queries run on torch, not ONNX Runtime: %s", record.problem)
    cache.remember(spec, record)
    cache.prune()  # towers of checkpoints that are gone
    return record


def weights_file_of(weights: str | None) -> str | None:
    """The checkpoint file behind open_clip's ``pretrained`` argument (None for random weights or a URL tag)."""
    return weights if weights is not None and Path(weights).is_file() else None
