"""Fine-tuning settings and the small pure pieces of the loop: config, events, freezing, run folders."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from carmatch.atomic import atomic_open
from carmatch.bounds import number_problem
from carmatch.config import CLI
from carmatch.embedding.titan_embedder import is_bedrock_model
from carmatch.errors import CarmatchError, ConfigError, InvalidInputError, Problem
from carmatch.training.data import Pair, check_split, write_pairs_jsonl
from carmatch.training.views import DEFAULT_VIEWS, parse_views

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
PAIRS_FILE = "pairs.jsonl"
DEFAULT_HARD_NEGATIVES = 1  # per image; 0 turns them off (bench/attribute_bench.py: they matter with attributes)


class TrainingOutOfMemoryError(CarmatchError):
    """The GPU ran out of memory during training."""


# Sane ranges of the numeric settings: (lowest, highest, whole number?). Finer rules live in validate().
NUMBER_BOUNDS: dict[str, tuple[float | None, float | None, bool]] = {
    "epochs": (None, 1000, True),
    "batch_size": (None, 4096, True),
    "accum_steps": (None, 1024, True),
    "lr": (None, 1.0, False),
    "min_lr_ratio": (0, 1, False),
    "warmup_steps": (-1, 1_000_000, True),
    "weight_decay": (None, 10, False),
    "grad_clip": (None, 1000, False),
    "unfreeze": (None, 10_000, True),
    "seed": (0, 2**32 - 1, True),
    "val_fraction": (None, None, False),
    "test_fraction": (None, None, False),
    "crop_scale_min": (None, None, False),
    "color_jitter": (None, None, False),
    "num_workers": (-1, 64, True),
    "eval_batch_size": (1, 4096, True),
    "checkpoint_minutes": (0, 24 * 60, False),
    "hard_negatives": (None, 64, True),
}


# -- config -------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    """Every setting of a fine-tuning run; saved with each checkpoint."""

    model: str  # open_clip name or model-config JSON path
    pretrained: str  # tag, checkpoint path, or "none"
    epochs: int = 5
    batch_size: int = 32  # pairs per micro-batch (the contrastive batch)
    accum_steps: int = 1  # micro-batches per optimizer step
    lr: float = 1e-5
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = -1  # -1: 10% of all steps, at most 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # 0 disables clipping
    unfreeze: int = 2  # last K blocks of each tower train (plus heads); -1 trains everything
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    crop_scale_min: float = 0.8
    color_jitter: float = 0.0  # off by default: see AugmentConfig
    device: str = "auto"
    precision: str = "auto"  # auto (bf16/fp16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16
    num_workers: int = -1  # loader processes; -1: 0 on CPU, 4 on CUDA; 0: one loading thread makes batches ahead
    eval_batch_size: int = 64
    checkpoint_minutes: float = 10.0  # also save last.pt this often within an epoch
    caption_views: str = DEFAULT_VIEWS  # full caption / short attribute descriptions, e.g. "full:1,attributes:2"
    hard_negatives: int = DEFAULT_HARD_NEGATIVES  # images differing in one attribute beside each image in its batch

    def bounds_problems(self) -> list[Problem]:
        """Each numeric setting that is NaN, infinite, not a number, or outside its sane range."""
        checks = [
            (name, value, low, high, integer)
            for name, (low, high, integer) in NUMBER_BOUNDS.items()
            for value in [getattr(self, name)]
        ]
        found = [
            number_problem(value, name, low, high, integer=integer, label=f"--{name.replace('_', '-')}")
            for name, value, low, high, integer in checks
        ]
        return [problem for problem in found if problem is not None]

    def validate(self) -> None:
        """Refuse nonsensical values with a message saying what to use instead."""
        bounds = self.bounds_problems()  # first: NaN passes every comparison below
        if bounds:
            raise InvalidInputError("Invalid training settings", problems=bounds)
        lr_ok = self.lr > 0 and math.isfinite(self.lr)
        if lr_ok and self.lr > 1e-2:
            log.warning("Learning rate %g is very high for fine-tuning CLIP; 1e-5 is typical", self.lr)
        flags = [  # (refused?, field = the train command's flag, value, lowest allowed, what to use)
            (self.epochs < 1, "epochs", self.epochs, 1, "train for at least 1 epoch"),
            (not lr_ok, "lr", self.lr, 0, "the learning rate must be positive (1e-5 is a good start for CLIP)"),
            (
                self.batch_size < 2,
                "batch_size",
                self.batch_size,
                2,
                "contrastive training needs at least 2 pairs a batch",
            ),
            (self.accum_steps < 1, "accum_steps", self.accum_steps, 1, "use 1 or more"),
            (self.unfreeze < -1, "unfreeze", self.unfreeze, -1, "use a number of blocks, or -1 for the whole model"),
            (self.hard_negatives < 0, "hard_negatives", self.hard_negatives, 0, "use 0 (off) or more"),
        ]
        problems = [
            Problem(name, value, (low, None), f"{value}: {why}", f"--{name.replace('_', '-')}")
            for refused, name, value, low, why in flags
            if refused
        ]
        if self.weight_decay < 0 or self.grad_clip < 0:
            problems.append(
                Problem("regularisation", reason="must not be negative", label="weight decay and gradient clipping")
            )
        val, test = self.val_fraction, self.test_fraction
        if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
            problems.append(
                Problem(
                    "fractions",
                    (val, test),
                    (0, 1),
                    "must be in (0, 1) and sum below 1",
                    "validation and test fractions",
                )
            )
        if not 0 < self.crop_scale_min <= 1 or not 0 <= self.color_jitter < 1:
            problems.append(
                Problem("augmentation", reason="must be in (0, 1] and colour jitter in [0, 1)", label="crop scale")
            )
        if self.precision not in PRECISIONS:
            problems.append(
                Problem("precision", self.precision, PRECISIONS, f"{self.precision!r}: use auto, fp32, bf16 or fp16")
            )
        problems.extend(self._text_problems())
        if problems:
            raise InvalidInputError("Invalid training settings", problems=problems)

    def _text_problems(self) -> list[Problem]:
        """A model training cannot fine-tune (Titan on Bedrock) and a caption-view mix that does not parse."""
        problems: list[Problem] = []
        if is_bedrock_model(self.model):
            reason = (
                f"is {self.model}, Titan on Bedrock: train fine-tunes open_clip models; "
                f"fine-tune Titan with {CLI} titan finetune"
            )
            problems.append(Problem("carmatch_model", self.model, reason=reason, label="CARMATCH_MODEL"))
        try:
            parse_views(self.caption_views)
        except InvalidInputError as exc:
            problems.extend(exc.problems)
        return problems

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a saved dict, ignoring unknown keys."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class TrainEvent:
    """A progress report: after each optimizer step ("step"), each epoch ("epoch"), and at the end."""

    kind: str  # "step" | "epoch" | "done" | "cancelled"
    run_id: str
    epoch: int  # epochs completed (for "epoch": the one just finished, 1-based)
    step: int  # optimizer steps done
    total_steps: int
    loss: float | None = None
    lr: float | None = None
    val_loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # validation recall etc. on "epoch"
    elapsed_s: float = 0.0
    eta_s: float | None = None
    message: str = ""


EventCallback = Callable[[TrainEvent], None]


@dataclass
class TrainResult:
    """What a finished run produced."""

    run_id: str
    run_dir: Path
    best_checkpoint: Path
    best_epoch: int
    history: list[dict[str, Any]]
    test_before: dict[str, float]
    test_after: dict[str, float]
    config: TrainConfig
    split_hash: str


# -- freezing, precision -------------------------------------------------------------
_BLOCK = re.compile(r"^(?P<tower>visual\.|text\.)?(?:transformer|trunk)\.(?:resblocks|blocks)\.(?P<n>\d+)\.")
_HEAD_PARAMS = ("visual.proj", "text_projection", "logit_scale", "logit_bias", "text.text_projection")
_HEAD_MODULES = ("visual.ln_post.", "ln_final.", "text.ln_final.", "visual.head.", "visual.attn_pool.", "text.proj.")


def freeze_all_but_last(model: Any, k: int) -> tuple[int, int]:
    """Train only the last ``k`` blocks of each tower plus the heads (k=-1: all); returns (trainable, total)."""
    names = [name for name, _ in model.named_parameters()]
    depth: dict[str, int] = {}
    for name in names:
        match = _BLOCK.match(name)
        if match:
            tower = "visual" if match["tower"] == "visual." else "text"
            depth[tower] = max(depth.get(tower, 0), int(match["n"]) + 1)
    if k >= 0 and set(depth) != {"visual", "text"}:
        raise ConfigError(
            "--unfreeze K works with transformer towers only; use --unfreeze -1 to train the whole model."
        )
    trainable = total = 0
    for name, param in model.named_parameters():
        if k < 0:
            wanted = True
        else:
            match = _BLOCK.match(name)
            if match:
                tower = "visual" if match["tower"] == "visual." else "text"
                wanted = int(match["n"]) >= depth[tower] - k
            else:
                wanted = name in _HEAD_PARAMS or name.startswith(_HEAD_MODULES)
        param.requires_grad_(wanted)
        total += param.numel()
        trainable += param.numel() if wanted else 0
    return trainable, total


def model_fingerprint(model: Any) -> str:
    """A hash of parameter names and shapes: checkpoints only load into the same architecture."""
    digest = hashlib.blake2b(digest_size=12)
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)};".encode())
    return digest.hexdigest()


def resolve_precision(precision: str, device: str) -> str:
    """fp32 on CPU; on CUDA bf16 where supported, else fp16 (with a gradient scaler)."""
    import torch

    if not device.startswith("cuda"):
        return "fp32"
    if precision != "auto":
        return precision
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save to ``path`` atomically (a crash keeps the previous checkpoint)."""
    import torch

    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)


def atomic_json(data: Any, path: Path) -> None:
    """Write JSON to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, default=str)


def new_run_id() -> str:
    """A sortable, unique run id such as ``run-20250101-120000-ab12``."""
    return time.strftime("run-%Y%m%d-%H%M%S-", time.gmtime()) + os.urandom(2).hex()


def create_run(run_dir: Path, config: TrainConfig, pairs: Sequence[Pair]) -> None:
    """Write a new run folder: validated config plus the data snapshot it will train on."""
    config.validate()
    check_split(pairs, config.batch_size)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise InvalidInputError(f"{run_dir} already holds a run; resume it instead.")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_pairs_jsonl(pairs, run_dir / PAIRS_FILE)
    atomic_json(asdict(config), run_dir / CONFIG_FILE)
