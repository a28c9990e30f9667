"""The training entry point inside a SageMaker job (and ``python -m carmatch.training.entry``): arguments in, a run out.

SageMaker passes the data channels and the output folder as ``SM_*`` environment variables and the
hyperparameters as ``--name value`` arguments; they become a run folder that :class:`Trainer` trains.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from carmatch.training.checkpoints import LAST_CHECKPOINT
from carmatch.training.config import CONFIG_FILE, PAIRS_FILE, TrainConfig, TrainEvent, create_run
from carmatch.training.data import read_pairs_jsonl
from carmatch.training.loop import Trainer

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    """The entry point's arguments: the channels and output folders, then every TrainConfig field."""
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
        "--checkpoint-dir",
        default=None,
        help="train in this folder (SageMaker's CheckpointConfig LocalPath, synced with S3): a restarted job resumes "
        "from its last.pt, then the model files are copied to --out",
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
    return parser


def train_from_args(argv: Sequence[str] | None = None) -> int:
    """Train from a pairs JSONL (``SM_CHANNEL_TRAINING`` inside SageMaker) into ``SM_MODEL_DIR``."""
    parser = _parser()
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
    run_dir = Path(args.checkpoint_dir or args.out)
    if (run_dir / LAST_CHECKPOINT).exists():
        log.info("Resuming from %s (a stopped or interrupted job's checkpoint)", run_dir / LAST_CHECKPOINT)
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
    _publish(run_dir, Path(args.out))
    log.info("test t2i R@5 before %.3f after %.3f", result.test_before["t2i_r5"], result.test_after["t2i_r5"])
    return 0


def _publish(run_dir: Path, out: Path) -> None:
    """Leave the trained model in ``out`` (SageMaker's model.tar.gz): the run's files, not the optimizer state."""
    if out.resolve() != run_dir.resolve():  # trained in the checkpoint folder: copy what the model needs
        out.mkdir(parents=True, exist_ok=True)
        for path in run_dir.iterdir():
            if path.is_file() and path.name != LAST_CHECKPOINT:
                shutil.copy2(path, out / path.name)
    elif os.environ.get("SM_MODEL_DIR"):
        (run_dir / LAST_CHECKPOINT).unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Train from a pairs JSONL (``SM_CHANNEL_TRAINING`` inside SageMaker) into ``SM_MODEL_DIR``."""
    return train_from_args(argv)


if __name__ == "__main__":
    raise SystemExit(main())
