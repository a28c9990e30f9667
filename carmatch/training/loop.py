"""Fine-tune CLIP on image–caption pairs: config, data, model, optimizer, ``lr_at(step)``, loop, evaluate, checkpoint.

Reads top to bottom like nanoGPT's train.py. A run lives in one folder (``runs/<run_id>/``):
``config.json``, ``pairs.jsonl`` (the data snapshot), ``last.pt`` (everything needed to resume
exactly), ``best.pt`` (weights of the best epoch by validation recall, loadable by open_clip) and
``summary.json``. The same code runs inside a SageMaker training job (``python -m
carmatch.training.entry``), reading ``SM_CHANNEL_TRAINING`` and writing to ``SM_MODEL_DIR``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from carmatch.errors import CancelledError, InvalidInputError
from carmatch.images import model_input_side
from carmatch.training.checkpoints import (
    BEST_CHECKPOINT,
    CHECKPOINT_FORMAT,
    LAST_CHECKPOINT,
    SUMMARY_FILE,
    ChunkEnded,
    load_resume_checkpoint,
)
from carmatch.training.config import (
    CONFIG_FILE,
    PAIRS_FILE,
    EventCallback,
    TrainConfig,
    TrainEvent,
    TrainingOutOfMemoryError,
    TrainResult,
    atomic_json,
    atomic_torch_save,
    freeze_all_but_last,
    model_fingerprint,
    resolve_precision,
)
from carmatch.training.contrastive import MultiPositiveClipLoss, backward_group
from carmatch.training.data import (
    AugmentConfig,
    Pair,
    PairDataset,
    TrainTransform,
    check_split,
    epoch_batches,
    on_disk_split,
    read_pairs_jsonl,
    split_counts,
    split_hash,
)
from carmatch.training.evaluation import evaluate_model, selection_score, validation_metrics
from carmatch.training.loading import BatchLoader
from carmatch.training.schedule import Schedule, build_optimizer, make_schedule
from carmatch.training.views import CaptionViews

log = logging.getLogger(__name__)


@dataclass
class _Setup:
    """Everything a run builds once before its first step: data, model, optimizer and schedule."""

    train: list[Pair]
    val: list[Pair]
    test: list[Pair]
    data_hash: str
    device: str
    precision: str
    model: Any
    preprocess: Any
    tokenizer: Any
    fingerprint: str
    dataset: Any
    optimizer: Any
    params: list[Any]
    scaler: Any
    loss_fn: Any
    schedule: Schedule
    autocast_dtype: Any
    workers: int


@dataclass
class _Clock:
    """When this session (a start or a resume) began, for the elapsed time and the ETA."""

    start: float
    start_step: int
    last_save: float

    def eta(self, step: int, total: int) -> float | None:
        """Seconds left at this session's pace, once it has made a step."""
        done = step - self.start_step
        if done <= 0:
            return None
        return (time.monotonic() - self.start) / done * (total - step)


# -- the trainer --------------------------------------------------------------------------------
class Trainer:
    """One run: data, model and optimizer from the run folder; trains, evaluates, checkpoints.

    ``budget_seconds``: train in chunks (a ZeroGPU call has a duration); past it, save last.pt, raise ChunkEnded.
    """

    def __init__(
        self,
        run_dir: Path,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
        budget_seconds: float | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.budget_seconds = budget_seconds
        self.run_id = self.run_dir.name
        self.on_event = on_event or (lambda event: None)
        self.cancel = cancel or threading.Event()
        try:
            self.config = TrainConfig.from_dict(json.loads((self.run_dir / CONFIG_FILE).read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise InvalidInputError(f"{self.run_dir} is not a training run ({exc}).") from exc
        self.pairs = read_pairs_jsonl(self.run_dir / PAIRS_FILE)
        self._session_start = time.monotonic()

    def run(self) -> TrainResult:
        """Train to the last epoch (resuming from last.pt when present); raises CancelledError when cancelled."""
        import torch

        cfg = self.config
        cfg.validate()
        setup = self._setup()
        state = self._start_or_resume(setup)
        now = time.monotonic()
        clock = _Clock(now, state["step"], now)
        self._session_start = clock.start
        try:
            while state["epoch"] < cfg.epochs:
                self._train_epoch(setup, state, clock)
                self._end_epoch(setup, state, clock)
        except torch.cuda.OutOfMemoryError as exc:
            raise TrainingOutOfMemoryError(
                f"The GPU ran out of memory at batch size {cfg.batch_size}. Use a smaller batch with gradient "
                f"accumulation to keep the effective batch, e.g. --batch-size {max(2, cfg.batch_size // 2)} "
                f"--accum-steps {cfg.accum_steps * 2}, or unfreeze fewer blocks (--unfreeze 1). "
                f"The last checkpoint is kept; --resume {self.run_id} continues from it."
            ) from exc
        return self._finish(setup, state, clock)

    # -- config, data, model, optimizer ----------------------------------------------------------
    def _setup(self) -> _Setup:
        import torch

        from carmatch.embedding.embedder import load_clip, resolve_device

        cfg = self.config
        train = [p for p in self.pairs if p.split == "train"]
        check_split(self.pairs, cfg.batch_size)
        device = resolve_device(cfg.device)
        precision = resolve_precision(cfg.precision, device)
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        embedder = load_clip(cfg.model, cfg.pretrained, device)
        model, preprocess, tokenizer = embedder.model, embedder.preprocess, embedder.tokenizer
        fingerprint = model_fingerprint(model)
        trainable, total = freeze_all_but_last(model, cfg.unfreeze)
        log.info("Run %s: %d/%d parameters trainable, %s on %s", self.run_id, trainable, total, precision, device)
        aug = AugmentConfig(crop_scale=(cfg.crop_scale_min, 1.0), color_jitter=cfg.color_jitter)
        optimizer, params = build_optimizer(model, cfg)
        views = CaptionViews([p.caption for p in train], [p.attributes for p in train], cfg.caption_views, cfg.seed)
        side = model_input_side(model)
        return _Setup(
            train=train,
            val=[p for p in self.pairs if p.split == "validation"],
            test=[p for p in self.pairs if p.split == "test"],
            data_hash=split_hash(self.pairs),
            device=device,
            precision=precision,
            model=model,
            preprocess=preprocess,
            tokenizer=tokenizer,
            fingerprint=fingerprint,
            dataset=PairDataset(
                train, preprocess, tokenizer, TrainTransform(preprocess, aug), cfg.seed, views=views, image_side=side
            ),
            optimizer=optimizer,
            params=params,
            scaler=torch.amp.GradScaler("cuda", enabled=precision == "fp16"),
            loss_fn=MultiPositiveClipLoss(),
            schedule=make_schedule(cfg, len(epoch_batches(len(train), cfg.batch_size, cfg.seed, 0))),
            autocast_dtype={"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision),
            workers=cfg.num_workers if cfg.num_workers >= 0 else (4 if device.startswith("cuda") else 0),
        )

    def _start_or_resume(self, s: _Setup) -> dict[str, Any]:
        """The loop state: from last.pt when the run was interrupted, else fresh with the base model's scores."""
        state: dict[str, Any] = {
            "epoch": 0,
            "batch_pos": 0,
            "step": 0,
            "history": [],
            "step_log": [],
            "best_score": -1.0,
            "best_epoch": 0,
            "elapsed_s": 0.0,
            "test_before": {},
        }
        last = self.run_dir / LAST_CHECKPOINT
        if last.exists():
            ckpt = load_resume_checkpoint(last, s.fingerprint, s.data_hash, self.run_id, self.config.model)
            s.model.load_state_dict(ckpt["model"])
            s.optimizer.load_state_dict(ckpt["optimizer"])
            if ckpt.get("scaler"):
                s.scaler.load_state_dict(ckpt["scaler"])
            state.update(ckpt["state"])
            log.info("Resuming %s at epoch %d, step %d", self.run_id, state["epoch"], state["step"])
            return state
        base = self._evaluate(s, s.val)
        state["history"].append({"epoch": 0, **base})
        state["test_before"] = evaluate_model(
            s.model, s.preprocess, s.tokenizer, s.test, s.device, self.config.eval_batch_size, s.train
        )
        total = s.schedule.total_steps
        self._emit("epoch", state, total, val_loss=base["val_loss"], metrics=base, message="before training")
        return state

    def _save_last(self, s: _Setup, state: dict[str, Any]) -> None:
        """Everything needed to resume exactly, in last.pt."""
        atomic_torch_save(
            {
                "format": CHECKPOINT_FORMAT,
                "config": asdict(self.config),
                "split_hash": s.data_hash,
                "model_fingerprint": s.fingerprint,
                "model": s.model.state_dict(),
                "optimizer": s.optimizer.state_dict(),
                "scaler": s.scaler.state_dict() if s.scaler.is_enabled() else None,
                "schedule": s.schedule.as_dict(),
                "state": state,
            },
            self.run_dir / LAST_CHECKPOINT,
        )

    # -- the loop --------------------------------------------------------------------------------
    def _train_epoch(self, s: _Setup, state: dict[str, Any], clock: _Clock) -> None:
        """The optimizer steps of one epoch, from where the run stopped (``batch_pos``)."""
        cfg = self.config
        batches = s.dataset.batches(cfg.batch_size, state["epoch"], cfg.hard_negatives)
        s.model.train()
        group: list[Any] = []
        with BatchLoader(s.dataset, batches[state["batch_pos"] :], s.workers, s.device.startswith("cuda")) as loader:
            for images, tokens in loader:
                group.append((images, tokens))
                pos = state["batch_pos"] + len(group)
                if len(group) < cfg.accum_steps and pos < len(batches):
                    continue
                keys = [key for batch in batches[pos - len(group) : pos] for key in batch]
                self._step(s, state, group, clock, s.dataset.positives(keys))
                state["batch_pos"] = pos
                group = []
                self._checkpoint_or_cancel(s, state, clock)

    def _step(self, s: _Setup, state: dict[str, Any], group: list[Any], clock: _Clock, positives: Any) -> None:
        """One optimizer step over ``group`` (micro-batches); ``positives``: which text describes which image."""
        import torch

        lr = s.schedule.lr(state["step"])
        for param_group in s.optimizer.param_groups:
            param_group["lr"] = lr
        loss_fn = functools.partial(s.loss_fn, positives=positives)
        mean_loss = backward_group(s.model, group, loss_fn, s.scaler.scale, s.device, s.autocast_dtype)
        if self.config.grad_clip > 0:
            s.scaler.unscale_(s.optimizer)
            torch.nn.utils.clip_grad_norm_(s.params, self.config.grad_clip)
        s.scaler.step(s.optimizer)
        s.scaler.update()
        s.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():  # as in CLIP: keep the temperature in a sane range
            s.model.logit_scale.clamp_(0, math.log(100))
        state["step"] += 1
        state["step_log"].append({"step": state["step"], "epoch": state["epoch"], "loss": mean_loss, "lr": lr})
        total = s.schedule.total_steps
        self._emit("step", state, total, loss=mean_loss, lr=lr, eta=clock.eta(state["step"], total))

    def _checkpoint_or_cancel(self, s: _Setup, state: dict[str, Any], clock: _Clock) -> None:
        """Save last.pt and stop when cancelled; save it every ``checkpoint_minutes`` anyway."""
        if self.cancel.is_set():
            state["elapsed_s"] += time.monotonic() - clock.start
            self._save_last(s, state)
            raise CancelledError(
                f"Training run {self.run_id} cancelled at step {state['step']}/{s.schedule.total_steps}; "
                f"resume it with: .venv/bin/carmatch train --resume {self.run_id}"
            )
        if self.budget_seconds is not None and time.monotonic() - self._session_start >= self.budget_seconds:
            state["elapsed_s"] += time.monotonic() - clock.start
            self._save_last(s, state)
            raise ChunkEnded(f"step {state['step']}/{s.schedule.total_steps}")
        if time.monotonic() - clock.last_save > self.config.checkpoint_minutes * 60:
            self._save_last(s, state)
            clock.last_save = time.monotonic()

    def _end_epoch(self, s: _Setup, state: dict[str, Any], clock: _Clock) -> None:
        """Evaluate on validation, keep the best weights, checkpoint."""
        metrics = self._evaluate(s, s.val)
        state["epoch"] += 1
        state["batch_pos"] = 0
        state["history"].append({"epoch": state["epoch"], **metrics})
        score = selection_score(metrics)
        if score > state["best_score"]:
            state["best_score"], state["best_epoch"] = score, state["epoch"]
            atomic_torch_save(s.model.state_dict(), self.run_dir / BEST_CHECKPOINT)
        self._save_last(s, state)
        clock.last_save = time.monotonic()
        total = s.schedule.total_steps
        eta = clock.eta(state["step"], total)
        self._emit("epoch", state, total, val_loss=metrics["val_loss"], metrics=metrics, eta=eta)

    def _finish(self, s: _Setup, state: dict[str, Any], clock: _Clock) -> TrainResult:
        """Base vs best on the test split, written to summary.json."""
        import torch

        cfg = self.config
        best = self.run_dir / BEST_CHECKPOINT
        s.model.load_state_dict(torch.load(best, map_location=s.device, weights_only=True))
        test_after = evaluate_model(s.model, s.preprocess, s.tokenizer, s.test, s.device, cfg.eval_batch_size, s.train)
        test_before = state["test_before"]
        summary = {
            "run_id": self.run_id,
            "best_epoch": state["best_epoch"],
            "steps": state["step"],
            "split_hash": s.data_hash,
            "test_before": test_before,
            "test_after": test_after,
            "history": state["history"],
            "config": asdict(cfg),
            "pairs": {on_disk_split(name): n for name, n in split_counts(self.pairs).items()},
            "elapsed_s": state["elapsed_s"] + time.monotonic() - clock.start,
            "attribute_values_skipped": sum(s.dataset.views.skipped.values()),
        }
        atomic_json(summary, self.run_dir / SUMMARY_FILE)
        self._emit("done", state, s.schedule.total_steps, metrics=test_after, message="finished")
        return TrainResult(
            self.run_id,
            self.run_dir,
            best,
            state["best_epoch"],
            state["history"],
            test_before,
            test_after,
            cfg,
            s.data_hash,
        )

    # -- helpers ---------------------------------------------------------------------------------
    def _evaluate(self, s: _Setup, pairs: list[Pair]) -> dict[str, float]:
        """Validation loss and retrieval metrics of the model as it is now."""
        cfg = self.config
        return validation_metrics(
            s.model, s.preprocess, s.tokenizer, pairs, s.loss_fn, s.device, cfg.eval_batch_size, cfg.batch_size, s.train
        )

    def _emit(
        self,
        kind: str,
        state: dict[str, Any],
        total_steps: int,
        loss: float | None = None,
        lr: float | None = None,
        val_loss: float | None = None,
        metrics: dict[str, float] | None = None,
        eta: float | None = None,
        message: str = "",
    ) -> None:
        event = TrainEvent(
            kind,
            self.run_id,
            state["epoch"],
            state["step"],
            total_steps,
            loss,
            lr,
            val_loss,
            dict(metrics or {}),
            state["elapsed_s"] + time.monotonic() - self._session_start,
            eta,
            message,
        )
        try:
            self.on_event(event)
        except Exception:  # a broken progress display must not kill a training run
            log.exception("Training progress callback failed")
