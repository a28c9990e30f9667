"""Training commands: train (local or SageMaker), eval, model list/activate, titan finetune/status."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from tqdm import tqdm

from admin import titan_cmds
from admin.common import TqdmProgress, add_engine_option, runtime_for, steps_count
from carmatch.errors import CancelledError, InvalidInputError
from carmatch.training import registry
from carmatch.training.evaluation import comparison_rows, epoch_summary, format_table


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the training commands to the admin parser."""
    _add_train(subparsers)
    _add_eval(subparsers)
    _add_model(subparsers)
    _add_titan(subparsers)


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    """``train``: the hyperparameters of a local run, then the SageMaker options."""
    p = subparsers.add_parser("train", help="fine-tune CLIP on the approved image–caption pairs")
    p.add_argument("--epochs", type=int, help="passes over the training pairs (default 5)")
    p.add_argument("--batch-size", type=int, help="pairs per contrastive batch (default 32)")
    p.add_argument(
        "--accum-steps", type=int, help="batches per optimizer step, for a larger effective batch (default 1)"
    )
    p.add_argument("--lr", type=float, help="peak learning rate (default 1e-5)")
    p.add_argument("--unfreeze", type=int, help="train only the last K blocks of each tower; -1 = all (default 2)")
    p.add_argument("--warmup-steps", type=steps_count, help="linear warmup steps (default 10%% of steps, at most 100)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--color-jitter", type=float, help="brightness/contrast jitter (default 0: colours are queries)")
    p.add_argument("--val-fraction", type=float, help="share held out for validation (default: the collection's)")
    p.add_argument(
        "--test-fraction",
        type=float,
        help="share held out for testing (default: the collection's split, 0.1 until changed). A new value "
        "changes the split eval and exports follow; keep it fixed so before/after numbers compare across runs",
    )
    p.add_argument(
        "--caption-views",
        metavar="MIX",
        help="what each step pairs an image with: full (its caption), attributes (a short description from its "
        "attributes), or a weighted mix such as full:1,attributes:2 (default full,attributes)",
    )
    p.add_argument(
        "--hard-negatives",
        type=int,
        metavar="N",
        help="images differing in one attribute put in each image's batch (default 1; 0 turns it off)",
    )
    p.add_argument("--resume", metavar="RUN", help="continue a stopped run exactly where it left off")
    p.add_argument("--sagemaker", action="store_true", help="train on SageMaker instead of this machine")
    p.add_argument("--role-arn", help="SageMaker execution role ARN (default CARMATCH_SAGEMAKER_ROLE_ARN)")
    p.add_argument("--bucket", help="S3 bucket for data, code and the model (default CARMATCH_BATCH_BUCKET)")
    p.add_argument("--spot", action="store_true", help="managed spot training (cheaper; resumes from S3 checkpoints)")
    p.add_argument(
        "--max-wait-hours", type=float, help="with --spot: longest wait for spot capacity + run (default 2x the run)"
    )
    p.add_argument("--prefix", default="carmatch", help="S3 key prefix (default carmatch)")
    p.add_argument("--instance-type", help="SageMaker instance type (default CARMATCH_SAGEMAKER_INSTANCE_TYPE)")
    p.add_argument("--image-uri", help="training container (default: AWS PyTorch training image for the region)")
    p.add_argument("--subnets", metavar="IDS", help="run the SageMaker job in these VPC subnets (comma-separated)")
    p.add_argument("--security-groups", metavar="IDS", help="the VPC security groups (comma-separated; with --subnets)")
    p.add_argument(
        "--vpc-has-internet",
        action="store_true",
        help="confirm the subnets reach the internet through a NAT gateway (the job installs packages)",
    )
    p.add_argument("--no-wait", action="store_true", help="submit the SageMaker job and return")
    p.add_argument("--sagemaker-job", metavar="NAME", help="wait for / collect an already submitted SageMaker job")
    p.set_defaults(func=cmd_train)


def _add_eval(subparsers: argparse._SubParsersAction) -> None:
    """``eval``: which models, on which split."""
    p = subparsers.add_parser("eval", help="retrieval recall of the base model and fine-tuned runs")
    p.add_argument(
        "--model",
        action="append",
        metavar="RUN|base",
        help="model to evaluate (repeatable; default: base and the active run)",
    )
    p.add_argument("--split", default="test", help="train, validation (or val), test or all (default test)")
    p.add_argument("--val-fraction", type=float, help="as given to train (default: the collection's split)")
    p.add_argument("--test-fraction", type=float, help="as given to train (default: the collection's split)")
    p.add_argument("--json", action="store_true", help="print metrics as JSON")
    p.set_defaults(func=cmd_eval)


def _add_model(subparsers: argparse._SubParsersAction) -> None:
    """``model list`` and ``model activate``."""
    p = subparsers.add_parser("model", help="list and activate fine-tuned models")
    sub = p.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    s = sub.add_parser("list", help="registered models with their metrics")
    s.add_argument("--json", action="store_true", help="print as JSON")
    s.set_defaults(func=cmd_model_list)
    s = sub.add_parser("activate", help="make RUN (or base) answer searches; rebuilds the index beside the live one")
    s.add_argument("run", metavar="RUN|base")
    add_engine_option(s)
    s.set_defaults(func=cmd_model_activate)


def _add_titan(subparsers: argparse._SubParsersAction) -> None:
    """``titan finetune`` and ``titan status``."""
    p = subparsers.add_parser("titan", help="fine-tune Amazon Titan Multimodal Embeddings on Bedrock")
    sub = p.add_subparsers(dest="titan_command", metavar="ACTION", required=True)
    s = sub.add_parser("finetune", help="start a Bedrock model customization job")
    s.add_argument("--train", required=True, help="s3:// URI of the Titan JSONL training file")
    s.add_argument(
        "--validation",
        help="s3:// URI of a validation JSONL, sent only when given (Bedrock's docs list none for Titan)",
    )
    s.add_argument("--output", help="s3:// URI for the job output (default: beside --train)")
    s.add_argument("--role-arn", required=True, help="IAM role Bedrock assumes to read and write S3")
    s.add_argument("--epochs", default="auto", help="epochCount, 1–100, or auto: Bedrock picks (default auto)")
    s.add_argument("--batch-size", type=int, default=576, help="batchSize, 256–9216 (default 576)")
    s.add_argument("--lr", type=float, default=5e-5, help="learningRate, 5e-8–1 (default 5e-5)")
    s.add_argument("--name", help="job name (default carmatch-titan-<time>)")
    s.set_defaults(func=cmd_titan_finetune)
    s = sub.add_parser("status", help="status of Titan customization jobs")
    s.add_argument("job", nargs="?", help="job name or ARN (default: every job started from here)")
    s.add_argument("--json", action="store_true", help="print as JSON")
    s.set_defaults(func=cmd_titan_status)
    titan_cmds.add_actions(sub)  # provision / deprovision


@contextlib.contextmanager
def ctrl_c_cancels(cancel: threading.Event, what: str) -> Iterator[None]:
    """First Ctrl-C sets ``cancel`` (a clean stop with a checkpoint); a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if cancel.is_set():
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        cancel.set()
        print(f"\nstopping {what} after the current step (Ctrl-C again to abort now)...", file=sys.stderr)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "accum_steps": args.accum_steps,
        "lr": args.lr,
        "unfreeze": args.unfreeze,
        "warmup_steps": args.warmup_steps,
        "seed": args.seed,
        "color_jitter": args.color_jitter,
        "val_fraction": args.val_fraction,
        "test_fraction": args.test_fraction,
        "caption_views": args.caption_views,
        "hard_negatives": args.hard_negatives,
    }


def cmd_train(args: argparse.Namespace) -> int:
    """Fine-tune locally (or on SageMaker) and print the before → after table."""
    from carmatch.training.config import TrainEvent
    from carmatch.training.runs import default_config, prepare_run, run_training

    if args.sagemaker or args.sagemaker_job:
        return _train_sagemaker(args)
    with runtime_for(args) as runtime:
        if args.resume:
            given = [k for k, v in _overrides(args).items() if v is not None]
            if given:
                print(f"note: --resume continues with the run's saved settings; ignoring {', '.join(given)}")
            run_id = args.resume
        else:
            config = default_config(args.settings, runtime.catalog, **_overrides(args))
            run_id = prepare_run(runtime.catalog, args.settings, config)
        print(f"Run {run_id} (folder {args.settings.runs_dir / run_id})")
        bar: tqdm | None = None

        def report(event: TrainEvent) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=event.total_steps, initial=event.step, desc="training", unit="step")
            if event.kind == "step":
                bar.n = event.step
                bar.set_postfix(loss=f"{event.loss:.4f}", lr=f"{event.lr:.1e}")
            elif event.kind == "epoch":
                bar.write(f"epoch {event.epoch}: {epoch_summary(event.val_loss, event.metrics, event.message)}")

        cancel = threading.Event()
        try:
            with ctrl_c_cancels(cancel, "training"):
                result = run_training(runtime.catalog, args.settings, run_id, report, cancel)
        except CancelledError as exc:
            print(str(exc), file=sys.stderr)
            return 130
        finally:
            if bar is not None:
                bar.close()
        print(f"\nBest epoch {result.best_epoch}. Test split, before → after:")
        print(format_table(comparison_rows({"base": result.test_before, run_id: result.test_after})))
        print(f"\nUse it for search: .venv/bin/carmatch model activate {run_id}")
        return 0


def _train_sagemaker(args: argparse.Namespace) -> int:
    from carmatch.cloud import sagemaker
    from carmatch.cloud.sagemaker_network import vpc_plan
    from carmatch.training.runs import default_config

    settings = args.settings
    args.role_arn = args.role_arn or settings.sagemaker_role_arn
    args.bucket = args.bucket or settings.batch_bucket
    args.instance_type = args.instance_type or settings.sagemaker_instance_type
    if args.sagemaker_job is None and (not args.role_arn or not args.bucket):
        raise InvalidInputError(
            "--sagemaker needs --role-arn ARN and --bucket BUCKET (or CARMATCH_SAGEMAKER_ROLE_ARN and "
            "CARMATCH_BATCH_BUCKET, which `.venv/bin/carmatch aws setup` writes into .env)."
        )
    network = vpc_plan(args.subnets, args.security_groups, args.vpc_has_internet)
    network.check()  # before any client is made or anything uploaded
    region = args.settings.aws_region
    sm, s3, quotas = sagemaker.sagemaker_clients(region)
    with runtime_for(args) as runtime:
        job = args.sagemaker_job
        if job is None:
            config = default_config(args.settings, runtime.catalog, **_overrides(args))
            progress = TqdmProgress()
            try:
                job = sagemaker.submit_training(
                    sm,
                    s3,
                    runtime.catalog,
                    config,
                    args.role_arn,
                    args.bucket,
                    region,
                    args.instance_type,
                    args.prefix,
                    args.image_uri,
                    progress=progress,
                    network=network,
                    quotas=quotas,
                    spot=args.spot,
                    max_wait_s=int(args.max_wait_hours * 3600) if args.max_wait_hours else None,
                )
            finally:
                progress.close()
            print(f"Submitted SageMaker training job {job}.")
            if args.no_wait:
                print(f"Collect it later: .venv/bin/carmatch train --sagemaker-job {job}")
                return 0

        def show(status: sagemaker.JobStatus) -> None:
            print(f"{status.name}: {status.status} / {status.secondary}, billable {status.billable_seconds} s")

        cancel = threading.Event()
        with ctrl_c_cancels(cancel, "waiting (the job keeps running)"):
            record = sagemaker.collect_job(sm, s3, runtime.catalog, args.settings.runs_dir, job, show, cancel)
        metrics = record.metrics
        if metrics.get("test_before") and metrics.get("test_after"):
            print(format_table(comparison_rows({"base": metrics["test_before"], job: metrics["test_after"]})))
        print(f"Registered {job}. Use it for search: .venv/bin/carmatch model activate {job}")
        return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Print recall@1/5/10 and median rank, one column per model."""
    with runtime_for(args) as runtime:
        models = args.model or ["base"] + ([runtime.active_model().run_id] if runtime.active_model().run_id else [])
        results = registry.evaluate_models(
            runtime, list(dict.fromkeys(models)), args.split, args.val_fraction, args.test_fraction
        )
        if args.json:
            queries = {
                "full_caption": _count(results, "n_texts"),
                "partial_description": _count(results, "attr_queries"),
            }
            models_json = {name: _counts_as_ints(metrics) for name, metrics in results.items()}
            print(json.dumps({"split": args.split, "queries": queries, "models": models_json}, indent=2))
        else:
            print(f"Split: {args.split}")
            print(format_table(comparison_rows(results)))
        return 0


def _counts_as_ints(metrics: dict[str, float]) -> dict[str, float | int]:
    """Metrics for JSON: counts (n_images, n_texts, *_queries) as integers, rates and ranks as they are."""
    return {k: int(v) if k.startswith("n_") or k.endswith("_queries") else v for k, v in metrics.items()}


def _count(results: dict[str, dict[str, float]], key: str) -> int:
    """How many queries of a kind the evaluation asked (the same for every model)."""
    return int(max((metrics.get(key, 0.0) for metrics in results.values()), default=0.0))


def cmd_model_list(args: argparse.Namespace) -> int:
    """List the base model and every registered run."""
    with runtime_for(args) as runtime:
        rows = registry.model_table(runtime)
        if args.json:
            print(json.dumps(rows, indent=2, default=str))
            return 0
        print(f"{'':2}{'id':34} {'kind':9} {'status':10} {'created':25} {'test t2i R@5':>14}  base model")
        for row in rows:
            after = (row["metrics"].get("test_after") or {}).get("t2i_r5")
            before = (row["metrics"].get("test_before") or {}).get("t2i_r5")
            r5 = f"{before:.3f}→{after:.3f}" if after is not None and before is not None else "-"
            print(
                f"{'*' if row['active'] else ' ':2}{row['id']:34} {row['kind']:9} {row['status']:10} "
                f"{row['created_at'] or '-':25} {r5:>14}  {row['base_model']}"
            )
        return 0


def cmd_model_activate(args: argparse.Namespace) -> int:
    """Switch searches to RUN (or base), rebuilding the index beside the live one."""
    with runtime_for(args) as runtime:
        progress = TqdmProgress()
        cancel = threading.Event()
        try:
            with ctrl_c_cancels(cancel, "the rebuild (the old index keeps serving)"):
                result = registry.activate(runtime, args.run, progress, cancel)
        finally:
            progress.close()
        if result.rebuilt:
            print(f"Activated {result.run_id}: {result.indexed} images indexed with {result.model_key}.")
        else:
            print(f"{result.run_id} is already active; its index is current ({result.indexed} images).")
        for image_id, reason in result.failures:
            print(f"  not indexed {image_id[:12]}: {reason}")
        return 0


def cmd_titan_finetune(args: argparse.Namespace) -> int:
    """Start a Titan Multimodal Embeddings customization job."""
    from carmatch.aws import make_client
    from carmatch.cloud import titan_finetune as titan

    epochs: int | str = int(args.epochs) if str(args.epochs).strip().isdigit() else str(args.epochs)
    hp = titan.TitanHyperparameters(epochs, args.batch_size, args.lr)
    hp.validate()  # refuse bad values before touching AWS
    region = args.settings.aws_region
    with runtime_for(args) as runtime:
        arn, warnings = titan.start_finetune(
            make_client("bedrock", region),
            runtime.catalog,
            args.train,
            args.role_arn,
            hp,
            args.validation or None,
            args.output,
            args.name,
            region=region,
        )
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"Started Titan fine-tuning job {arn}. Check it: .venv/bin/carmatch titan status")
        return 0


def cmd_titan_status(args: argparse.Namespace) -> int:
    """Print the status of Titan customization jobs."""
    from carmatch.aws import make_client
    from carmatch.cloud import titan_finetune as titan

    region = args.settings.aws_region
    with runtime_for(args) as runtime:
        rows = titan.job_status(make_client("bedrock", region), runtime.catalog, args.job, region)
        if args.json:
            print(json.dumps(rows, indent=2, default=str))
            return 0
        if not rows:
            print("No Titan jobs started from this carmatch home.")
        for row in rows:
            line = f"{row['job']}: {row['status']}"
            if row.get("custom_model_arn"):
                line += f"  custom model {row['custom_model_arn']}"
            if row.get("failure"):
                line += f"  ({row['failure']})"
            print(line)
        return 0
