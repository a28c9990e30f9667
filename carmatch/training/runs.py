"""Training jobs: start a run from the catalog, one at a time, in the foreground (CLI) or a background thread (app).

The Training tab holds a :class:`TrainingJob`: ``start_training(runtime, ...)`` returns at once,
``job.snapshot()`` gives everything to draw (loss curve, validation recall per epoch, ETA, log
tail, before/after table), ``job.cancel()`` stops at the next step leaving a resumable checkpoint,
and ``start_training(runtime, resume=run_id)`` continues it. A second start while one runs (in this
process or another one using the same home) raises BusyError.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carmatch.dataset.training_set import requested_split
from carmatch.errors import BusyError, CancelledError, CarmatchError, InvalidInputError
from carmatch.locations import stored_checkpoint
from carmatch.space.zerogpu import TRAIN_CHUNK_SECONDS, gpu, on_zerogpu, training_chunk_seconds
from carmatch.training import registry
from carmatch.training.checkpoints import ChunkEnded
from carmatch.training.config import (
    PAIRS_FILE,
    EventCallback,
    TrainConfig,
    TrainEvent,
    TrainResult,
    create_run,
    new_run_id,
)
from carmatch.training.data import dataset_summary, run_pairs
from carmatch.training.evaluation import comparison_rows, epoch_summary
from carmatch.training.loop import Trainer

if TYPE_CHECKING:
    from carmatch.catalog import Catalog
    from carmatch.config import Settings
    from carmatch.runtime import Runtime

log = logging.getLogger(__name__)

LOCK_FILE = registry.TRAINING_LOCK_FILE
LOG_TAIL_LINES = 200
_PROCESS_LOCK = threading.Lock()


@contextlib.contextmanager
def training_slot(runs_dir: Path) -> Iterator[None]:
    """Hold the one-training-job-at-a-time lock of a carmatch home; BusyError when it is taken."""
    if not _PROCESS_LOCK.acquire(blocking=False):
        raise BusyError("A training job is already running; wait for it to finish or cancel it first.")
    handle = None
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl

            handle = open(runs_dir / LOCK_FILE, "a+")
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                raise BusyError(
                    "A training job is already running for this carmatch home (another process holds "
                    f"{runs_dir / LOCK_FILE}); wait for it to finish or cancel it first."
                ) from exc
        except ImportError:  # no fcntl (Windows): the in-process lock still guards the app
            pass
        yield
    finally:
        if handle is not None:
            handle.close()
        _PROCESS_LOCK.release()


def is_training() -> bool:
    """True while a training job holds this process's training slot."""
    return _PROCESS_LOCK.locked()


def device_summary(device: str = "auto") -> dict[str, Any]:
    """The device training would use and defaults suited to it, for the Training tab."""
    from carmatch.embedding.embedder import resolve_device
    from carmatch.embedding.fast_path import cpu_without_torch

    resolved = "cpu" if cpu_without_torch(device) else resolve_device(device)  # no torch import on a CPU machine
    if resolved.startswith("cuda"):
        import torch

        props = torch.cuda.get_device_properties(torch.device(resolved))
        memory_gb = props.total_memory / 1024**3
        batch = 128 if memory_gb >= 40 else 64 if memory_gb >= 16 else 32
        return {
            "device": resolved,
            "name": props.name,
            "memory_gb": round(memory_gb, 1),
            "message": f"GPU: {props.name}, {memory_gb:.0f} GB",
            "defaults": {"epochs": 5, "batch_size": batch, "accum_steps": 1, "lr": 1e-5, "unfreeze": 2},
        }
    return {
        "device": "cpu",
        "name": "CPU",
        "memory_gb": None,
        "message": "CPU: expect hours for a real fine-tune; a small test run (1 epoch, few pairs) takes minutes.",
        "defaults": {"epochs": 1, "batch_size": 32, "accum_steps": 1, "lr": 1e-5, "unfreeze": 1},
    }


def default_config(settings: Settings, catalog: Catalog | None = None, **overrides: Any) -> TrainConfig:
    """A TrainConfig for the home's base model; ``overrides`` set any field (None values are ignored).

    With ``catalog``, split fractions not given are the collection's (see dataset.training_set).
    """
    values = {k: v for k, v in overrides.items() if v is not None}
    if catalog is not None:
        split = requested_split(catalog, values.get("val_fraction"), values.get("test_fraction"))
        values.update(val_fraction=split.validation, test_fraction=split.test)
    values.setdefault("device", settings.device)
    return TrainConfig(model=settings.model, pretrained=settings.pretrained, **values)


def prepare_run(catalog: Catalog, settings: Settings, config: TrainConfig, run_id: str | None = None) -> str:
    """Snapshot the catalog's pairs into a new run folder and register it as running; returns the run id."""
    config.validate()
    pairs, source = run_pairs(catalog, config.val_fraction, config.test_fraction, config.batch_size)
    run_id = run_id or new_run_id()
    run_dir = settings.runs_dir / run_id
    create_run(run_dir, config, pairs)
    registry.register_model(
        catalog,
        run_id,
        "local",
        config.model,
        config.pretrained,
        "running",
        config={**config.__dict__, "data_source": source},
    )
    log.info("Prepared run %s with %d pairs (%s)", run_id, len(pairs), source)
    return run_id


def run_training(
    catalog: Catalog,
    settings: Settings,
    run_id: str,
    on_event: EventCallback | None = None,
    cancel: threading.Event | None = None,
) -> TrainResult:
    """Train (or resume) a prepared run in this thread, holding the training slot, and register the outcome."""
    _check_run(catalog, settings, run_id)
    with training_slot(settings.runs_dir):
        return _train_and_register(catalog, settings, run_id, on_event, cancel)


def _check_run(catalog: Catalog, settings: Settings, run_id: str) -> None:
    if not (settings.runs_dir / run_id / PAIRS_FILE).exists():
        registry.get_model(catalog, run_id)  # unknown id: NotFoundError naming the known runs
        raise InvalidInputError(f"Run {run_id} has no data snapshot in {settings.runs_dir / run_id}; start a new run.")


@gpu(duration=training_chunk_seconds)
def _train_chunk(trainer: Trainer) -> TrainResult:
    """One ZeroGPU call's worth of training (the whole run off ZeroGPU)."""
    return trainer.run()


def train_in_chunks(
    run_dir: Path, on_event: EventCallback | None, cancel: threading.Event | None, chunk_seconds: float | None
) -> TrainResult:
    """Train a run to its end, in chunks of ``chunk_seconds`` of steps when given, each resuming from last.pt."""
    while True:
        try:
            return _train_chunk(Trainer(run_dir, on_event, cancel, budget_seconds=chunk_seconds))
        except ChunkEnded as chunk:
            log.info("Training chunk ended at %s; resuming in the next one", chunk)


def _train_and_register(
    catalog: Catalog, settings: Settings, run_id: str, on_event: EventCallback | None, cancel: threading.Event | None
) -> TrainResult:
    run_dir = settings.runs_dir / run_id
    trainer = Trainer(run_dir, on_event, cancel)
    config = dict(trainer.config.__dict__)
    registry.register_model(
        catalog, run_id, "local", trainer.config.model, trainer.config.pretrained, "running", config=config
    )
    try:
        result = train_in_chunks(run_dir, on_event, cancel, TRAIN_CHUNK_SECONDS if on_zerogpu() else None)
    except (CancelledError, KeyboardInterrupt):
        registry.set_status(catalog, run_id, "cancelled")
        raise
    except BaseException:
        registry.set_status(catalog, run_id, "failed")
        raise
    metrics = {
        "test_before": result.test_before,
        "test_after": result.test_after,
        "best_epoch": result.best_epoch,
        "split_hash": result.split_hash,
        "val": result.history[result.best_epoch],
    }
    registry.register_model(
        catalog,
        run_id,
        "local",
        result.config.model,
        result.config.pretrained,
        "ready",
        checkpoint=stored_checkpoint(result.best_checkpoint, settings.files_home),  # relative: the home can move
        config=config,
        metrics=metrics,
    )
    return result


class TrainingJob:
    """A training run in a background thread, with state the Training tab can poll."""

    def __init__(self, catalog: Catalog, settings: Settings, run_id: str):
        self.catalog = catalog
        self.settings = settings
        self.run_id = run_id
        self.cancel_event = threading.Event()
        self.status = "starting"  # starting | running | finished | cancelled | failed
        self.error: str | None = None
        self.result: TrainResult | None = None
        self.steps: list[dict[str, Any]] = []
        self.epochs: list[dict[str, Any]] = []
        self.last_event: TrainEvent | None = None
        self.log_tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self.started_at = time.time()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------------------
    def start(self) -> TrainingJob:
        """Start the worker thread (holding the training slot; BusyError when another job runs)."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def work() -> None:
            try:
                with training_slot(self.settings.runs_dir):
                    ready.set()
                    self._run()
            except BusyError as exc:
                failure.append(exc)
                ready.set()

        self._thread = threading.Thread(target=work, name=f"carmatch-train-{self.run_id}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def cancel(self) -> None:
        """Ask the run to stop at the next step; it saves a checkpoint that --resume continues."""
        self.cancel_event.set()
        self._log("cancel requested: stopping after the current step")

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the worker to end; True when it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        """True while the worker thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    # -- worker ----------------------------------------------------------------------------------
    def _run(self) -> None:
        self.status = "running"
        self._log(f"run {self.run_id} started")
        try:
            self.result = _train_and_register(
                self.catalog, self.settings, self.run_id, self._on_event, self.cancel_event
            )
            self.status = "finished"
            self._log(f"finished: best epoch {self.result.best_epoch}")
        except CancelledError as exc:
            self.status, self.error = "cancelled", str(exc)
            self._log(str(exc))
        except CarmatchError as exc:
            self.status, self.error = "failed", str(exc)
            self._log(f"error: {exc}")
        except Exception as exc:  # the worker must report every failure to the UI, not die silently
            log.exception("Training run %s crashed", self.run_id)
            self.status, self.error = "failed", f"{type(exc).__name__}: {exc}"
            self._log(f"error: {self.error}")

    def _on_event(self, event: TrainEvent) -> None:
        with self._lock:
            self.last_event = event
            if event.kind == "step":
                self.steps.append({"step": event.step, "epoch": event.epoch, "loss": event.loss, "lr": event.lr})
                if event.step % 10 == 0 or event.step == 1:
                    self._log(f"step {event.step}/{event.total_steps} loss {event.loss:.4f} lr {event.lr:.2e}")
            elif event.kind == "epoch":
                row = {
                    "epoch": event.epoch,
                    "val_loss": event.val_loss,
                    **{k: event.metrics.get(k) for k in ("t2i_r1", "t2i_r5", "t2i_r10", "attr_p5")},
                }
                self.epochs.append(row)
                self._log(f"epoch {event.epoch}: {epoch_summary(event.val_loss, event.metrics, event.message)}")

    def _log(self, line: str) -> None:
        self.log_tail.append(time.strftime("%H:%M:%S ") + line)

    # -- what the UI polls -----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Status, curves, ETA, log tail and (when finished) the before/after table."""
        with self._lock:
            event = self.last_event
            snap: dict[str, Any] = {
                "run_id": self.run_id,
                "status": self.status,
                "error": self.error,
                "step": event.step if event else 0,
                "total_steps": event.total_steps if event else 0,
                "epoch": event.epoch if event else 0,
                "eta_s": event.eta_s if event else None,
                "loss_curve": list(self.steps),
                "val_curve": list(self.epochs),
                "log_tail": list(self.log_tail),
                "before_after": None,
            }
        if self.result is not None:
            snap["before_after"] = comparison_rows(
                {"base": self.result.test_before, self.run_id: self.result.test_after}
            )
        return snap


def start_training(
    runtime: Runtime,
    config: TrainConfig | None = None,
    resume: str | None = None,
    earlier: TrainingJob | None = None,
    **overrides: Any,
) -> TrainingJob:
    """Start a new run (or resume one) in the background; returns the job to poll or cancel.

    Resuming with the ``earlier`` job of the same run keeps its loss and recall curves and log.
    """
    if is_training():
        raise BusyError("A training job is already running; wait for it to finish or cancel it first.")
    if resume is not None:
        _check_run(runtime.catalog, runtime.settings, resume)
        run_id = resume
    else:
        config = config or default_config(runtime.settings, runtime.catalog, **overrides)
        run_id = prepare_run(runtime.catalog, runtime.settings, config)
    job = TrainingJob(runtime.catalog, runtime.settings, run_id)
    if resume is not None and earlier is not None and earlier.run_id == run_id:
        job.steps, job.epochs = list(earlier.steps), list(earlier.epochs)
        job.log_tail.extend(earlier.log_tail)
    return job.start()


def summary_for_tab(runtime: Runtime) -> dict[str, Any]:
    """Dataset counts plus device defaults, for the top of the Training tab."""
    return {
        **dataset_summary(runtime.catalog),
        **device_summary(runtime.settings.device),
        "pid": os.getpid(),
        "busy": is_training(),
    }
