"""The optimizer and its schedule: AdamW parameter groups, linear warmup then cosine decay."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from carmatch.training.config import TrainConfig

ADAM_BETAS = (0.9, 0.98)  # CLIP's
ADAM_EPS = 1e-6
MAX_AUTO_WARMUP_STEPS = 100


def lr_at(step: int, total_steps: int, warmup_steps: int, max_lr: float, min_lr: float) -> float:
    """Learning rate at optimizer step ``step``: linear warmup, then cosine decay to ``min_lr``."""
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)


@dataclass(frozen=True)
class Schedule:
    """A run's learning-rate schedule (stored in its checkpoints)."""

    total_steps: int
    warmup_steps: int
    max_lr: float
    min_lr: float

    def lr(self, step: int) -> float:
        """The learning rate at optimizer step ``step``."""
        return lr_at(step, self.total_steps, self.warmup_steps, self.max_lr, self.min_lr)

    def as_dict(self) -> dict[str, Any]:
        """The schedule as checkpoints record it."""
        return asdict(self)


def make_schedule(cfg: TrainConfig, micro_batches_per_epoch: int) -> Schedule:
    """The schedule for ``cfg``: warmup of ``cfg.warmup_steps`` (negative: 10 % of the run, at most 100 steps)."""
    steps_per_epoch = math.ceil(micro_batches_per_epoch / cfg.accum_steps)
    total = steps_per_epoch * cfg.epochs
    warmup = cfg.warmup_steps if cfg.warmup_steps >= 0 else min(MAX_AUTO_WARMUP_STEPS, max(1, total // 10))
    return Schedule(total, warmup, cfg.lr, cfg.lr * cfg.min_lr_ratio)


def _decays(name: str, param: Any) -> bool:
    """Weight decay applies to matrices, not to biases, norms, embeddings or the temperature."""
    return bool(param.ndim >= 2 and "embedding" not in name and "logit" not in name)


def build_optimizer(model: Any, cfg: TrainConfig) -> tuple[Any, list[Any]]:
    """AdamW over the trainable parameters (decay only where it belongs); returns (optimizer, parameters)."""
    import torch

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in named if _decays(n, p)]
    no_decay = [p for n, p in named if not _decays(n, p)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=ADAM_BETAS,
        eps=ADAM_EPS,
    )
    return optimizer, [p for _, p in named]
