"""Helpers for the training tests: a home full of drawn cars whose approved captions say what is drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from carmatch.runtime import Runtime
from carmatch.training.config import TrainConfig
from carmatch.training.runs import default_config
from tests.drawing import BODIES, COLORS, save_car

BODY_WORDS = {"sedan": "sedan", "pickup": "pickup truck", "van": "van"}


def caption_for(color: str, body: str) -> str:
    """The caption of a drawn car: exactly what is drawn."""
    return f"a {color} {BODY_WORDS[body]}"


def fill_with_cars(
    runtime: Runtime, folder: Path, seeds: int = 4, approve: bool = True, attributes: bool = False
) -> int:
    """Draw every colour × body ``seeds`` times, ingest them and give each its caption; returns the count.

    With ``attributes`` each caption also carries Claude-style attributes: its colour and body type.
    """
    captions: dict[str, str] = {}
    drawn: dict[str, dict[str, str]] = {}
    for color in COLORS:
        for body in BODIES:
            for seed in range(seeds):
                name = f"{color}_{body}_{seed}.png"
                save_car(folder / name, color, body, seed=1000 * seed + len(captions))
                captions[name] = caption_for(color, body)
                drawn[name] = {"color": color, "body_type": body}
    runtime.ingestor().ingest_folder(folder)
    for name, caption in captions.items():
        record = runtime.catalog.find_by_path(str((folder / name).resolve()))
        assert record is not None
        runtime.catalog.set_caption(
            record.id,
            caption,
            "human",
            attributes=drawn[name] if attributes else None,
            review_state="approved" if approve else None,
        )
    return len(captions)


def fast_config(runtime: Runtime, **overrides: Any) -> TrainConfig:
    """Settings that train the tiny model in seconds on a CPU."""
    values: dict[str, Any] = dict(
        epochs=2,
        batch_size=16,
        lr=2e-3,
        warmup_steps=2,
        weight_decay=0.0,
        val_fraction=0.2,
        test_fraction=0.25,
        device="cpu",
        eval_batch_size=64,
    )
    values.update(overrides)
    return default_config(runtime.settings, **values)


def nudged_checkpoint(tiny_model: tuple[str, str], path: Path) -> Path:
    """The tiny model with seeded nudged weights (another embedding space), saved at ``path``."""
    import torch

    state = torch.load(tiny_model[1], weights_only=True)
    generator = torch.Generator().manual_seed(1)
    nudged = {
        k: v + 0.05 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v
        for k, v in state.items()
    }
    path.parent.mkdir(parents=True)
    torch.save(nudged, path)
    return path
