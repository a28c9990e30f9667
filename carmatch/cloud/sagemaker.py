"""Fine-tune on SageMaker: upload the pairs and images, ship carmatch's own training code, run, collect.

The job runs ``carmatch/training.py`` unchanged inside a PyTorch training container (script mode):
the ``training`` channel holds ``pairs.jsonl`` (and a model-config JSON when the model is one), the
``images`` channel a manifest of this job's images (stored content-addressed, so later jobs upload
only new ones), and the optional ``base`` channel a local base checkpoint. Clients are passed in
(tests use Stubber/moto).
"""

from __future__ import annotations

import json
import logging
import tarfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carmatch.atomic import fsync_file, replace_dir, staging_dir
from carmatch.aws import parse_s3_uri
from carmatch.catalog import Catalog
from carmatch.cloud.sagemaker_images import training_image_uri
from carmatch.cloud.sagemaker_network import NetworkPlan
from carmatch.cloud.sagemaker_upload import (
    ENTRY_POINT,
    MANIFEST_SUFFIX,
    package_source,
    upload_code,
    upload_dataset,
)
from carmatch.errors import AwsError, CancelledError, InvalidInputError
from carmatch.training import registry
from carmatch.training.checkpoints import SUMMARY_FILE
from carmatch.training.config import TrainConfig, new_run_id
from carmatch.training.data import run_pairs

log = logging.getLogger(__name__)
__all__ = ["ENTRY_POINT", "package_source", "submit_training", "collect_job", "training_image_uri"]

POLL_SECONDS = 30
TERMINAL_STATUSES = ("Completed", "Failed", "Stopped", "Deleting")  # a Deleting job can change no more either
MAX_RUNTIME_SECONDS = 24 * 3600
CHECKPOINT = CHECKPOINT_LOCAL_PATH = (
    "/opt/ml/checkpoints"  # synced to S3 by SageMaker; a restarted job finds last.pt here
)


def _aws(action: str, region: str | None = None) -> Callable[[BaseException], AwsError]:
    from carmatch.aws import explain_aws_error

    return lambda exc: explain_aws_error(exc, action, region)


def hyperparameters(config: TrainConfig, source_uri: str, region: str) -> dict[str, str]:
    """Script-mode hyperparameters: values JSON-encoded as the SageMaker SDK does, names as training.main reads."""
    values: dict[str, Any] = {
        "sagemaker_program": ENTRY_POINT,
        "sagemaker_submit_directory": source_uri,
        "sagemaker_region": region,
        "sagemaker_container_log_level": 20,
        "checkpoint-dir": CHECKPOINT,
    }
    for key, value in config.__dict__.items():
        if key == "device":
            continue
        if key in ("model", "pretrained") and (str(value).endswith(".json") or Path(str(value)).is_file()):
            value = Path(str(value)).name  # shipped in a channel; training.main finds it there
        values[key.replace("_", "-")] = value
    return {k: json.dumps(v) for k, v in values.items()}


# -- the job ------------------------------------------------------------------------------------
@dataclass
class JobStatus:
    """What describe_training_job says about a job."""

    name: str
    status: str  # InProgress | Completed | Failed | Stopping | Stopped | Deleting
    secondary: str
    billable_seconds: int
    failure_reason: str | None
    model_artifacts: str | None

    @property
    def done(self) -> bool:
        """True once the job can change no more."""
        return self.status in TERMINAL_STATUSES


def stopping_condition(max_runtime_s: int, spot: bool, max_wait_s: int | None = None) -> dict[str, int]:
    """The job's ``StoppingCondition``: spot jobs wait up to ``max_wait_s`` (default twice the run) for capacity."""
    condition = {"MaxRuntimeInSeconds": int(max_runtime_s)}
    if spot:
        condition["MaxWaitTimeInSeconds"] = int(max_wait_s or 2 * max_runtime_s)
        if condition["MaxWaitTimeInSeconds"] < max_runtime_s:
            raise InvalidInputError(
                field="max_wait",
                value=str(max_wait_s),
                label="--max-wait-hours",
                reason=f"must be at least the run time ({max_runtime_s} s): SageMaker counts spot waiting in it",
            )
    return condition


# long: eighteen keyword parameters, one a line; the body is one request dict
def submit_training(
    sm: Any,
    s3: Any,
    catalog: Catalog,
    config: TrainConfig,
    role_arn: str,
    bucket: str,
    region: str,
    instance_type: str = "ml.g5.xlarge",
    prefix: str = "carmatch",
    image_uri: str | None = None,
    max_runtime_s: int = MAX_RUNTIME_SECONDS,
    job_name: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    network: NetworkPlan | None = None,
    quotas: Any = None,
    spot: bool = False,
    max_wait_s: int | None = None,
) -> str:
    """Check the quota, upload data and code, create the job, register it as submitted; returns the job name.

    ``quotas`` (a Service Quotas client) is read before anything is uploaded; ``spot`` runs on managed spot
    capacity, waiting up to ``max_wait_s`` (default twice the run time) for it. Either way the job checkpoints
    to S3, so a stopped, interrupted or preempted job resumes from its last epoch.
    """
    from carmatch.cloud.sagemaker_quota import require_training_quota

    config.validate()
    stopping = stopping_condition(max_runtime_s, spot, max_wait_s)
    network = network or NetworkPlan()
    network.check()
    image_uri = image_uri or training_image_uri(region, instance_type)  # an unknown region is refused here
    if not role_arn.startswith("arn:"):
        raise InvalidInputError(f"--role-arn {role_arn!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME).")
    if quotas is not None:
        require_training_quota(quotas, instance_type, spot)  # before any upload: a 0 quota wastes nothing
    pairs, source = run_pairs(catalog, config.val_fraction, config.test_fraction, config.batch_size)
    job_name = job_name or "carmatch-" + new_run_id()[4:].replace("_", "-")
    prefix = prefix.strip("/")
    model_config = Path(config.model) if config.model.endswith(".json") else None
    channels = upload_dataset(s3, pairs, bucket, prefix, job_name, model_config, progress)
    source_uri, base_uri = upload_code(s3, config, bucket, f"{prefix}/jobs/{job_name}", region)
    if base_uri is not None:
        channels["base"] = base_uri
    request = {
        "TrainingJobName": job_name,
        "AlgorithmSpecification": {
            "TrainingImage": image_uri,
            "TrainingInputMode": "File",
        },
        "RoleArn": role_arn,
        "HyperParameters": hyperparameters(config, source_uri, region),
        "InputDataConfig": _input_channels(channels),
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/{prefix}/jobs/{job_name}/output/"},
        "ResourceConfig": {"InstanceType": instance_type, "InstanceCount": 1, "VolumeSizeInGB": 50},
        "StoppingCondition": stopping,
        "CheckpointConfig": {"S3Uri": f"s3://{bucket}/{prefix}/jobs/{job_name}/checkpoints/", "LocalPath": CHECKPOINT},
        "EnableManagedSpotTraining": spot,
        "Tags": [{"Key": "app", "Value": "carmatch"}],
        **network.request(),
    }
    arn = _create_job(sm, request, region)
    job_config: dict[str, Any] = {"arn": arn, "instance_type": instance_type, "data_source": source, "bucket": bucket}
    job_config.update(prefix=prefix, spot=spot)
    registry.register_model(
        catalog,
        job_name,
        "sagemaker",
        config.model,
        config.pretrained,
        "submitted",
        config={**config.__dict__, **job_config},
    )
    log.info("Created SageMaker training job %s (%s)", job_name, arn)
    return job_name


def _input_channels(channels: dict[str, str]) -> list[dict[str, Any]]:
    """``InputDataConfig`` entries: each channel name → its S3 prefix or manifest, copied to the instance."""
    return [
        {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "ManifestFile" if uri.endswith(MANIFEST_SUFFIX) else "S3Prefix",
                    "S3Uri": uri,
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
        }
        for name, uri in channels.items()
    ]


def _create_job(sm: Any, request: dict[str, Any], region: str) -> str:
    """Create the training job ``request`` describes; returns its ARN."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return str(sm.create_training_job(**request)["TrainingJobArn"])
    except (BotoCoreError, ClientError) as exc:
        raise _aws(f"create SageMaker training job {request['TrainingJobName']}", region)(exc) from exc


def describe_job(sm: Any, job_name: str) -> JobStatus:
    """The job's status, secondary status and billable seconds."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        d = sm.describe_training_job(TrainingJobName=job_name)
    except (BotoCoreError, ClientError) as exc:
        raise _aws(f"describe SageMaker training job {job_name}")(exc) from exc
    return JobStatus(
        job_name,
        d["TrainingJobStatus"],
        d.get("SecondaryStatus", ""),
        int(d.get("BillableTimeInSeconds") or 0),
        d.get("FailureReason"),
        (d.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
    )


def wait_for_job(
    sm: Any,
    job_name: str,
    on_status: Callable[[JobStatus], None] | None = None,
    cancel: threading.Event | None = None,
    poll_seconds: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> JobStatus:
    """Poll until the job ends; reports each status change. Cancelling stops polling, not the job."""
    previous = None
    while True:
        status = describe_job(sm, job_name)
        if on_status and (status.status, status.secondary, status.billable_seconds) != previous:
            on_status(status)
        previous = (status.status, status.secondary, status.billable_seconds)
        if status.done:
            return status
        if cancel is not None and cancel.is_set():
            raise CancelledError(
                f"Stopped waiting; SageMaker job {job_name} keeps running. Collect it later with "
                f".venv/bin/carmatch train --sagemaker-job {job_name}, or stop it in the SageMaker console."
            )
        sleep(poll_seconds)


def _safe_extract(archive: Path, dest: Path) -> None:
    """Unpack model.tar.gz into ``dest`` via a staging folder: a bad or interrupted unpack leaves ``dest`` as it was."""
    with staging_dir(dest.parent, prefix=f".{dest.name}-") as staging:
        root = staging.resolve()
        try:
            with tarfile.open(archive, mode="r:gz") as tar:
                for member in tar.getmembers():
                    target = (staging / member.name).resolve()
                    if not (member.isfile() or member.isdir()) or (target != root and root not in target.parents):
                        raise InvalidInputError(
                            f"model.tar.gz holds an unsafe entry {member.name!r}; refusing to unpack it."
                        )
                tar.extractall(staging)  # every member was checked above
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise InvalidInputError(
                f"model.tar.gz is corrupt or truncated ({exc}); download it again or rerun the job."
            ) from exc
        for extracted in staging.rglob("*"):
            if extracted.is_file():
                fsync_file(extracted)  # tarfile writes without fsync: flush before the swap
        replace_dir(staging, dest)


def collect_job(
    sm: Any,
    s3: Any,
    catalog: Catalog,
    runs_dir: Path,
    job_name: str,
    on_status: Callable[[JobStatus], None] | None = None,
    cancel: threading.Event | None = None,
    poll_seconds: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> registry.ModelRecord:
    """Wait for a submitted job, download model.tar.gz into runs/<job>/ and register it like a local run."""
    from botocore.exceptions import BotoCoreError, ClientError

    record = registry.get_model(catalog, job_name)
    status = wait_for_job(sm, job_name, on_status, cancel, poll_seconds, sleep)
    if status.status != "Completed" or not status.model_artifacts:
        registry.set_status(catalog, job_name, "failed" if status.status == "Failed" else "cancelled")
        raise AwsError(
            f"SageMaker job {job_name} ended {status.status}: {status.failure_reason or 'no model produced'}."
        )
    bucket, key = parse_s3_uri(status.model_artifacts, field="model_artifacts", label="The job's model artifacts")
    run_dir = runs_dir / job_name
    archive = runs_dir / f".{job_name}-model.tar.gz"
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(archive))  # to disk, in parallel parts: never held in memory
        _safe_extract(archive, run_dir)
    except (BotoCoreError, ClientError) as exc:
        raise _aws(f"download {status.model_artifacts}")(exc) from exc
    finally:
        archive.unlink(missing_ok=True)
    checkpoint = run_dir / "best.pt"
    if not checkpoint.is_file():
        raise InvalidInputError(f"{status.model_artifacts} holds no best.pt; the job did not finish training.")
    summary: dict[str, Any] = {}
    if (run_dir / SUMMARY_FILE).exists():
        try:
            summary = json.loads((run_dir / SUMMARY_FILE).read_text())
        except (OSError, ValueError) as exc:  # metrics are a nice-to-have; the weights are what count
            log.warning("Ignoring unreadable %s from %s: %s", SUMMARY_FILE, status.model_artifacts, exc)
    metrics = {k: summary.get(k) for k in ("test_before", "test_after", "best_epoch", "split_hash")}
    metrics["billable_seconds"] = status.billable_seconds
    return registry.register_model(
        catalog,
        job_name,
        "sagemaker",
        record.base_model,
        record.base_pretrained,
        "ready",
        checkpoint=str(checkpoint.resolve()),
        config=record.config,
        metrics=metrics,
    )


def sagemaker_clients(region: str) -> tuple[Any, Any, Any]:
    """(sagemaker, s3, service-quotas) boto3 clients for ``region``."""
    from carmatch.aws import make_client

    return make_client("sagemaker", region), make_client("s3", region), make_client("service-quotas", region)
