"""A run's checkpoint files: ``last.pt`` (everything needed to resume exactly) and ``best.pt`` (weights only)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from carmatch.errors import InvalidInputError, ModelMismatchError

CHECKPOINT_FORMAT = 1
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
SUMMARY_FILE = "summary.json"


def load_resume_checkpoint(path: Path, fingerprint: str, data_hash: str, run_id: str, model: str) -> dict[str, Any]:
    """``last.pt`` of run ``run_id``, refused unless it was trained from this architecture on this data."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:  # weights_only refuses code
        raise InvalidInputError(f"The checkpoint {path} is unreadable ({exc}); start a new run.") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InvalidInputError(f"{path} is not a carmatch training checkpoint; start a new run.")
    if ckpt["model_fingerprint"] != fingerprint:
        raise ModelMismatchError(
            f"The checkpoint {path} was trained from model {ckpt['config'].get('model')}, whose architecture "
            f"differs from {model}. Resume it with the model it was trained from, or start a new run."
        )
    if ckpt["split_hash"] != data_hash:
        raise InvalidInputError(f"The data of run {run_id} changed since its checkpoint; start a new run.")
    return ckpt


class ChunkEnded(Exception):
    """A training chunk used up its time budget; last.pt holds everything, and a new Trainer resumes from it."""
