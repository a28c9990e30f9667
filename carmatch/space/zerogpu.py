"""ZeroGPU: ``@spaces.GPU`` around the work that needs the GPU, with each call's duration computed from its work.

On a ZeroGPU Space (Hugging Face sets ``SPACES_ZERO_GPU``) a CUDA device exists only inside functions
decorated with ``spaces.GPU``; each call states how long it may hold the GPU (default 60 s), and shorter
requests queue first (hub-docs ``spaces-zerogpu.md``, checked 2026-12-07). carmatch decorates the torch
calls that run a model: a batch of images (ingest, rebuild, the demo import), a text or photo query on
the torch path, and a chunk of training steps. Everywhere else :func:`gpu` returns the function itself, so
the library keeps working without Gradio (importing ``spaces`` imports Gradio).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

ZEROGPU_ENV = "SPACES_ZERO_GPU"
GPU_CALL_SECONDS = 10  # a call's fixed cost: the GPU attached, the model's weights moved onto it
GPU_SECONDS_PER_BATCH = 2  # one batch of up to 64 images through a ViT-B on an H200 slice, with margin
TRAIN_CHUNK_SECONDS = 45  # training steps per ZeroGPU call before a checkpoint (then the next call resumes)
TRAIN_CHUNK_ALLOWANCE_SECONDS = 75  # set-up, one validation pass and the checkpoint after the chunk's steps


def on_zerogpu(env: Mapping[str, str] | None = None) -> bool:
    """True on a ZeroGPU Space."""
    env = os.environ if env is None else env
    return env.get(ZEROGPU_ENV, "").strip().lower() in {"1", "t", "true"}


def prepare_zerogpu() -> bool:
    """Import ``spaces`` first thing on ZeroGPU (before anything touches CUDA); True when on ZeroGPU."""
    if not on_zerogpu():
        return False
    import spaces  # noqa: F401 - patches torch so the model can be placed on cuda at start-up

    return True


def gpu(duration: int | Callable[..., float]) -> Callable[[F], F]:
    """``spaces.GPU(duration=duration)`` on ZeroGPU; elsewhere the function unchanged."""
    if not on_zerogpu():
        return lambda fn: fn
    import spaces  # only on ZeroGPU: it imports Gradio, and must come before CUDA is touched

    return spaces.GPU(duration=duration)  # type: ignore[no-any-return]


def batches_seconds(images: int, batch_size: int = 64) -> int:
    """How long a call embedding ``images`` images in batches of ``batch_size`` may hold the GPU."""
    batches = max(1, math.ceil(images / max(1, batch_size)))
    return GPU_CALL_SECONDS + GPU_SECONDS_PER_BATCH * batches


def image_batch_seconds(batch: Any) -> int:
    """Duration of one preprocessed image batch."""
    return batches_seconds(len(batch), len(batch))


def text_seconds(texts: Any) -> int:
    """Duration of encoding a few query texts."""
    return batches_seconds(len(texts))


def training_chunk_seconds(*_: Any) -> int:
    """Duration of one training chunk: its step budget plus set-up, evaluation and the checkpoint."""
    return TRAIN_CHUNK_SECONDS + TRAIN_CHUNK_ALLOWANCE_SECONDS
