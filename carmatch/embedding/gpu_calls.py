"""The torch model calls that run on the GPU when there is one, each a ``@spaces.GPU`` call on ZeroGPU.

Half precision under CUDA, plain float32 on the CPU; results always come back as float32 unit vectors on
the CPU. Durations are computed from the work (:mod:`carmatch.space.zerogpu`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from carmatch.embedding.vectors import unit_rows
from carmatch.space.zerogpu import gpu, image_batch_seconds, text_seconds


@contextlib.contextmanager
def inference(device: str) -> Iterator[None]:
    """No autograd; float16 autocast on CUDA."""
    import torch

    with torch.inference_mode():
        if device.startswith("cuda"):
            with torch.autocast("cuda", dtype=torch.float16):
                yield
        else:
            yield


@gpu(duration=lambda model, device, batch: image_batch_seconds(batch))  # spaces passes the call's arguments
def image_features(model: Any, device: str, batch: Any) -> np.ndarray:
    """The image tower over one preprocessed batch, as (N, dim) float32 unit vectors."""
    with inference(device):
        feats = model.encode_image(batch.to(device))
    return unit_rows(feats.float().cpu().numpy())


@gpu(duration=lambda model, device, tokens: text_seconds(tokens))
def text_features(model: Any, device: str, tokens: Any) -> np.ndarray:
    """The text tower over tokenized texts, as (N, dim) float32 unit vectors."""
    with inference(device):
        feats = model.encode_text(tokens.to(device))
    return unit_rows(feats.float().cpu().numpy())
