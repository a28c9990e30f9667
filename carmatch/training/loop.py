"""Fine-tune CLIP on image–caption pairs: config, data, model, optimizer, ``lr_at(step)``, loop, evaluate, checkpoint.

Reads top to bottom like nanoGPT's train.py. A run lives in one folder (``runs/<run_id>/``):
``config.json``, ``pairs.jsonl`` (the data snapshot), ``last.pt`` (everything needed to resume
exactly), ``best.pt`` (weights of the best epoch by validation recall, loadable by open_clip) and
``summary.json``. The same code runs inside a SageMaker training job (``python -m
carmatch.training.loop``), reading ``SM_CHANNEL_TRAINING`` and writing to ``SM_MODEL_DIR``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import pickle
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from carmatch.errors import CancelledError, InvalidInputError, ModelMismatchError
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
    create_run,
    freeze_all_but_last,
    lr_at,
    model_fingerprint,
    new_run_id,
    resolve_precision,
)
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
from carmatch.training.evaluation import evaluate_model, retrieval_metrics

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
SUMMARY_FILE = "summary.json"


__all__ = [
    "CONFIG_FILE",
    "PAIRS_FILE",
    "EventCallback",
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "Trainer",
    "TrainingOutOfMemoryError",
    "create_run",
    "freeze_all_but_last",
    "lr_at",
    "main",
    "model_fingerprint",
    "new_run_id",
    "resolve_precision",
]


# -- the trainer --------------------------------------------------------------------------------
class Trainer:
    """One run: builds data, model and optimizer from the run folder, trains, evaluates, checkpoints."""

    def __init__(self, run_dir: Path, on_event: EventCallback | None = None, cancel: threading.Event | None = None):
        self.run_dir = Path(run_dir)
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

        from carmatch.search.embedder import load_clip, resolve_device

        cfg = self.config
        cfg.validate()

        # -- data ----------------------------------------------------------------------------
        train = [p for p in self.pairs if p.split == "train"]
        val = [p for p in self.pairs if p.split == "validation"]
        test = [p for p in self.pairs if p.split == "test"]
        check_split(self.pairs, cfg.batch_size)
        data_hash = split_hash(self.pairs)

        # -- model ---------------------------------------------------------------------------
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
        dataset = PairDataset(train, preprocess, tokenizer, TrainTransform(preprocess, aug), seed=cfg.seed)

        # -- optimizer and schedule --------------------------------------------------------------
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        decay = [p for n, p in params if p.ndim >= 2 and "embedding" not in n and "logit" not in n]
        no_decay = [p for n, p in params if not (p.ndim >= 2 and "embedding" not in n and "logit" not in n)]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
            betas=(0.9, 0.98),
            eps=1e-6,
        )
        scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
        micro_per_epoch = len(epoch_batches(len(train), cfg.batch_size, cfg.seed, 0))
        steps_per_epoch = math.ceil(micro_per_epoch / cfg.accum_steps)
        total_steps = steps_per_epoch * cfg.epochs
        warmup = cfg.warmup_steps if cfg.warmup_steps >= 0 else min(100, max(1, total_steps // 10))
        min_lr = cfg.lr * cfg.min_lr_ratio
        from open_clip.loss import ClipLoss

        loss_fn = ClipLoss()

        # -- state (fresh or resumed) ----------------------------------------------------------
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
            ckpt = self._load_checkpoint(last, fingerprint, data_hash)
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            if ckpt.get("scaler"):
                scaler.load_state_dict(ckpt["scaler"])
            state.update(ckpt["state"])
            log.info("Resuming %s at epoch %d, step %d", self.run_id, state["epoch"], state["step"])
        else:
            base = self._evaluate(model, preprocess, tokenizer, val, loss_fn, device)
            state["history"].append({"epoch": 0, **base})
            state["test_before"] = evaluate_model(model, preprocess, tokenizer, test, device, cfg.eval_batch_size)
            self._emit("epoch", state, total_steps, val_loss=base["val_loss"], metrics=base, message="before training")

        def save_last() -> None:
            atomic_torch_save(
                {
                    "format": CHECKPOINT_FORMAT,
                    "config": asdict(cfg),
                    "split_hash": data_hash,
                    "model_fingerprint": fingerprint,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                    "schedule": {
                        "total_steps": total_steps,
                        "warmup_steps": warmup,
                        "max_lr": cfg.lr,
                        "min_lr": min_lr,
                    },
                    "state": state,
                },
                last,
            )

        # -- loop ----------------------------------------------------------------------------
        autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        workers = cfg.num_workers if cfg.num_workers >= 0 else (4 if device.startswith("cuda") else 0)
        session_start, session_start_step = time.monotonic(), state["step"]
        self._session_start = session_start
        last_save = time.monotonic()
        try:
            while state["epoch"] < cfg.epochs:
                epoch = state["epoch"]
                batches = epoch_batches(len(train), cfg.batch_size, cfg.seed, epoch)
                loader: Any = torch.utils.data.DataLoader(
                    dataset,  # type: ignore[arg-type]
                    batch_sampler=batches[state["batch_pos"] :],
                    num_workers=workers,
                    pin_memory=device.startswith("cuda"),
                )
                model.train()
                group: list[Any] = []
                for images, tokens in loader:
                    group.append((images, tokens))
                    pos = state["batch_pos"] + len(group)
                    if len(group) < cfg.accum_steps and pos < len(batches):
                        continue
                    lr = lr_at(state["step"], total_steps, warmup, cfg.lr, min_lr)
                    for param_group in optimizer.param_groups:
                        param_group["lr"] = lr
                    mean_loss = backward_group(model, group, loss_fn, scaler.scale, device, autocast_dtype)
                    if cfg.grad_clip > 0:
                        scaler.unscale_(optimizer)
                        torch.nn.utils.clip_grad_norm_([p for _, p in params], cfg.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    with torch.no_grad():  # as in CLIP: keep the temperature in a sane range
                        model.logit_scale.clamp_(0, math.log(100))
                    state["step"] += 1
                    state["batch_pos"] = pos
                    state["step_log"].append({"step": state["step"], "epoch": epoch, "loss": mean_loss, "lr": lr})
                    group = []
                    self._emit(
                        "step",
                        state,
                        total_steps,
                        loss=mean_loss,
                        lr=lr,
                        eta=self._eta(session_start, session_start_step, state["step"], total_steps),
                    )
                    if self.cancel.is_set():
                        state["elapsed_s"] += time.monotonic() - session_start
                        save_last()
                        raise CancelledError(
                            f"Training run {self.run_id} cancelled at step {state['step']}/{total_steps}; "
                            f"resume it with: python -m admin train --resume {self.run_id}"
                        )
                    if time.monotonic() - last_save > cfg.checkpoint_minutes * 60:
                        save_last()
                        last_save = time.monotonic()
                # -- end of epoch: evaluate, keep best, checkpoint ------------------------------
                metrics = self._evaluate(model, preprocess, tokenizer, val, loss_fn, device)
                state["epoch"] = epoch + 1
                state["batch_pos"] = 0
                state["history"].append({"epoch": epoch + 1, **metrics})
                score = _recall_score(metrics)
                if score > state["best_score"]:
                    state["best_score"], state["best_epoch"] = score, epoch + 1
                    atomic_torch_save(model.state_dict(), self.run_dir / BEST_CHECKPOINT)
                save_last()
                last_save = time.monotonic()
                self._emit(
                    "epoch",
                    state,
                    total_steps,
                    val_loss=metrics["val_loss"],
                    metrics=metrics,
                    eta=self._eta(session_start, session_start_step, state["step"], total_steps),
                )
        except torch.cuda.OutOfMemoryError as exc:
            raise TrainingOutOfMemoryError(
                f"The GPU ran out of memory at batch size {cfg.batch_size}. Use a smaller batch with gradient "
                f"accumulation to keep the effective batch, e.g. --batch-size {max(2, cfg.batch_size // 2)} "
                f"--accum-steps {cfg.accum_steps * 2}, or unfreeze fewer blocks (--unfreeze 1). "
                f"The last checkpoint is kept; --resume {self.run_id} continues from it."
            ) from exc

        # -- summary: base vs best on the test split ----------------------------------------------
        model.load_state_dict(torch.load(self.run_dir / BEST_CHECKPOINT, map_location=device, weights_only=True))
        test_after = evaluate_model(model, preprocess, tokenizer, test, device, cfg.eval_batch_size)
        test_before = state["test_before"]
        summary = {
            "run_id": self.run_id,
            "best_epoch": state["best_epoch"],
            "steps": state["step"],
            "split_hash": data_hash,
            "test_before": test_before,
            "test_after": test_after,
            "history": state["history"],
            "config": asdict(cfg),
            "pairs": {on_disk_split(s): n for s, n in split_counts(self.pairs).items()},
            "elapsed_s": state["elapsed_s"] + time.monotonic() - session_start,
        }
        atomic_json(summary, self.run_dir / SUMMARY_FILE)
        self._emit("done", state, total_steps, metrics=test_after, message="finished")
        return TrainResult(
            self.run_id,
            self.run_dir,
            self.run_dir / BEST_CHECKPOINT,
            state["best_epoch"],
            state["history"],
            test_before,
            test_after,
            cfg,
            data_hash,
        )

    # -- helpers ---------------------------------------------------------------------------------
    def _load_checkpoint(self, path: Path, fingerprint: str, data_hash: str) -> dict[str, Any]:
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
                f"differs from {self.config.model}. Resume it with the model it was trained from, or start a new run."
            )
        if ckpt["split_hash"] != data_hash:
            raise InvalidInputError(f"The data of run {self.run_id} changed since its checkpoint; start a new run.")
        return ckpt

    def _evaluate(
        self, model: Any, preprocess: Any, tokenizer: Any, pairs: list[Pair], loss_fn: Any, device: str
    ) -> dict[str, float]:
        """Validation loss (contrastive, in batches of the training batch size) and retrieval metrics."""
        import torch

        from carmatch.training.evaluation import embed_pairs

        images, texts = embed_pairs(model, preprocess, tokenizer, pairs, device, self.config.eval_batch_size)
        scale = float(model.logit_scale.detach().exp())
        losses, weights = [], []
        bs = self.config.batch_size
        with torch.no_grad():
            for start in range(0, len(pairs), bs):
                img = torch.from_numpy(images[start : start + bs])
                txt = torch.from_numpy(texts[start : start + bs])
                if len(img) >= 2:
                    losses.append(float(loss_fn(img, txt, scale)) * len(img))
                    weights.append(len(img))
        metrics = retrieval_metrics(images, texts, [p.caption for p in pairs])
        metrics["val_loss"] = sum(losses) / max(1, sum(weights))
        return metrics

    @staticmethod
    def _eta(start: float, start_step: int, step: int, total: int) -> float | None:
        done = step - start_step
        if done <= 0:
            return None
        return (time.monotonic() - start) / done * (total - step)

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


def backward_group(
    model: Any,
    group: Sequence[tuple[Any, Any]],
    loss_fn: Any,
    scale: Callable[[Any], Any],
    device: str,
    autocast_dtype: Any = None,
) -> float:
    """Backpropagate the contrastive loss of one optimizer step; returns the loss.

    With several micro-batches (gradient accumulation) every image is contrasted with every
    caption of the whole effective batch, as open_clip's ``accum_freq`` does: features of all
    micro-batches are computed without gradients first, then each micro-batch is recomputed with
    gradients and its slice swapped into the full set. The summed gradients equal those of one
    big batch, so a small GPU gets the negatives of a large batch, not just a steadier step.
    """
    import torch

    def features(images: Any, tokens: Any) -> tuple[Any, Any]:
        with torch.autocast("cuda", dtype=autocast_dtype, enabled=autocast_dtype is not None):
            return model.encode_image(images, normalize=True), model.encode_text(tokens, normalize=True)

    batches = [(i.to(device, non_blocking=True), t.to(device, non_blocking=True)) for i, t in group]
    if len(batches) == 1:
        image_features, text_features = features(*batches[0])
        with torch.autocast("cuda", dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = loss_fn(image_features, text_features, model.logit_scale.exp())
        scale(loss).backward()
        return float(loss.detach())
    with torch.no_grad():
        cached = [features(images, tokens) for images, tokens in batches]
    loss_value = 0.0
    for j, (images, tokens) in enumerate(batches):
        image_j, text_j = features(images, tokens)
        all_images = torch.cat([image_j if k == j else c[0] for k, c in enumerate(cached)])
        all_texts = torch.cat([text_j if k == j else c[1] for k, c in enumerate(cached)])
        # the temperature takes its gradient once per step, not once per micro-batch
        logit_scale = model.logit_scale.exp() if j == 0 else model.logit_scale.exp().detach()
        with torch.autocast("cuda", dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = loss_fn(all_images, all_texts, logit_scale)
        scale(loss).backward()
        loss_value = float(loss.detach())
    return loss_value


def _recall_score(metrics: dict[str, float]) -> float:
    """The number the best checkpoint is chosen by: mean text→image recall@1/5/10 on validation."""
    return (metrics["t2i_r1"] + metrics["t2i_r5"] + metrics["t2i_r10"]) / 3


# -- SageMaker / command-line entry point -------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Train from a pairs JSONL (``SM_CHANNEL_TRAINING`` inside SageMaker) into ``SM_MODEL_DIR``."""
    parser = argparse.ArgumentParser(description="carmatch CLIP fine-tuning (also the SageMaker entry point)")
    parser.add_argument(
        "--data",
        default=os.environ.get("SM_CHANNEL_TRAINING", "."),
        help="folder holding pairs.jsonl and the images it names",
    )
    parser.add_argument("--out", default=os.environ.get("SM_MODEL_DIR", "model"), help="output folder")
    parser.add_argument(
        "--images",
        default=os.environ.get("SM_CHANNEL_IMAGES"),
        help="folder the image paths in pairs.jsonl are relative to (default: --data)",
    )
    parser.add_argument(
        "--base-dir",
        default=os.environ.get("SM_CHANNEL_BASE"),
        help="folder holding the base checkpoint when it is a local file",
    )
    for f in fields(TrainConfig):
        names = sorted({f"--{f.name.replace('_', '-')}", f"--{f.name}"})
        if f.name in ("model", "pretrained"):
            parser.add_argument(*names, dest=f.name, required=True)
        else:
            parser.add_argument(*names, dest=f.name, type=type(f.default), default=f.default)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    if args.base_dir and not Path(values["pretrained"]).exists() and values["pretrained"] != "none":
        candidate = Path(args.base_dir) / Path(values["pretrained"]).name
        if candidate.exists():
            values["pretrained"] = str(candidate)
    if values["model"].endswith(".json") and not Path(values["model"]).exists():
        values["model"] = str(Path(args.data) / Path(values["model"]).name)
    config = TrainConfig.from_dict(values)
    data = Path(args.data)
    pairs = read_pairs_jsonl(data / PAIRS_FILE, Path(args.images) if args.images else data)
    run_dir = Path(args.out)
    if not (run_dir / CONFIG_FILE).exists():
        create_run(run_dir, config, pairs)

    def report(event: TrainEvent) -> None:
        if event.kind != "step" or event.step % 10 == 0:
            log.info(
                "%s epoch=%d step=%d/%d loss=%s val_loss=%s r5=%s",
                event.kind,
                event.epoch,
                event.step,
                event.total_steps,
                event.loss,
                event.val_loss,
                event.metrics.get("t2i_r5"),
            )

    result = Trainer(run_dir, report).run()
    if os.environ.get("SM_MODEL_DIR"):  # model.tar.gz needs the weights, not the optimizer state
        (run_dir / LAST_CHECKPOINT).unlink(missing_ok=True)
    log.info("test t2i R@5 before %.3f after %.3f", result.test_before["t2i_r5"], result.test_after["t2i_r5"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
