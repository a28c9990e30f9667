"""Fine-tune on SageMaker: upload the pairs and images, ship carmatch's own training code, run, collect.

The job runs ``carmatch/training.py`` unchanged inside a PyTorch training container (script mode):
the ``training`` channel holds ``pairs.jsonl`` (and a model-config JSON when the model is one), the
``images`` channel a manifest of this job's images (stored content-addressed, so later jobs upload
only new ones), and the optional ``base`` channel a local base checkpoint. Clients are passed in
(tests use Stubber/moto).
"""

from __future__ import annotations

import io
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
from carmatch.errors import AwsError, CancelledError, InvalidInputError
from carmatch.training import registry
from carmatch.training.checkpoints import SUMMARY_FILE
from carmatch.training.config import TrainConfig, new_run_id
from carmatch.training.data import Pair, pair_record, run_pairs

log = logging.getLogger(__name__)

ENTRY_POINT = "train_entry.py"
POLL_SECONDS = 30
TERMINAL_STATUSES = ("Completed", "Failed", "Stopped", "Deleting")  # a Deleting job can change no more either
MANIFEST_SUFFIX = ".manifest"  # a channel whose URI ends so is a SageMaker manifest file, not a prefix
MAX_RUNTIME_SECONDS = 24 * 3600
SOURCE_REQUIREMENTS = "open_clip_torch>=2.24\nftfy\nregex\n"
ENTRY_SOURCE = (
    '"""SageMaker entry point: carmatch\'s own training loop."""\n'
    "from carmatch.training.entry import main\n\nraise SystemExit(main())\n"
)


def _aws(action: str, region: str | None = None) -> Callable[[BaseException], AwsError]:
    from carmatch.aws import explain_aws_error

    return lambda exc: explain_aws_error(exc, action, region)


# -- packaging ----------------------------------------------------------------------------------
def package_source() -> bytes:
    """A sourcedir.tar.gz: the carmatch package, the entry script and requirements.txt."""
    package = Path(__file__).resolve().parents[1]  # the carmatch package
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(package.rglob("*.py")):
            if "__pycache__" in path.parts or "ui" in path.relative_to(package).parts:
                continue
            tar.add(path, arcname=f"carmatch/{path.relative_to(package).as_posix()}")
        for name, text in ((ENTRY_POINT, ENTRY_SOURCE), ("requirements.txt", SOURCE_REQUIREMENTS)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def upload_dataset(
    s3: Any,
    pairs: list[Pair],
    bucket: str,
    prefix: str,
    job_name: str,
    model_config: Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, str]:
    """Upload images (only those not already there) and the job's pairs JSONL; returns channel name → S3 URI."""
    from botocore.exceptions import BotoCoreError, ClientError

    images_prefix = f"{prefix}/images/"
    job_prefix = f"{prefix}/jobs/{job_name}/training/"
    try:
        existing: set[str] = set()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=images_prefix):
            existing.update(obj["Key"] for obj in page.get("Contents", []))
        records = []
        for n, pair in enumerate(pairs, 1):
            name = f"{pair.image_id}{Path(pair.path).suffix.lower() or '.jpg'}"
            if images_prefix + name not in existing:
                s3.upload_file(str(pair.path), bucket, images_prefix + name)  # streamed from disk
            records.append(pair_record(pair, name))
            if progress:
                progress(n, len(pairs), "uploading")
        body = "".join(json.dumps(r) + "\n" for r in records).encode()
        s3.put_object(Bucket=bucket, Key=job_prefix + "pairs.jsonl", Body=body)
        # the images channel lists this job's images only, not every image the prefix ever received
        manifest = [{"prefix": f"s3://{bucket}/{images_prefix}"}, *sorted({r["path"] for r in records})]
        manifest_key = f"{prefix}/jobs/{job_name}/images{MANIFEST_SUFFIX}"
        s3.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(manifest).encode())
        if model_config is not None:
            s3.put_object(Bucket=bucket, Key=job_prefix + model_config.name, Body=model_config.read_bytes())
    except OSError as exc:
        raise InvalidInputError(f"Cannot read an image to upload: {exc}") from exc
    except (BotoCoreError, ClientError) as exc:
        raise _aws(f"upload the dataset to s3://{bucket}/{prefix}")(exc) from exc
    return {"training": f"s3://{bucket}/{job_prefix}", "images": f"s3://{bucket}/{manifest_key}"}


def hyperparameters(config: TrainConfig, source_uri: str, region: str) -> dict[str, str]:
    """Script-mode hyperparameters: values JSON-encoded as the SageMaker SDK does, names as training.main reads."""
    values: dict[str, Any] = {
        "sagemaker_program": ENTRY_POINT,
        "sagemaker_submit_directory": source_uri,
        "sagemaker_region": region,
        "sagemaker_container_log_level": 20,
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
) -> str:
    """Upload data and code, create the training job, and register it as submitted; returns the job name."""
    config.validate()
    network = network or NetworkPlan()
    network.check()
    image_uri = image_uri or training_image_uri(region, instance_type)  # an unknown region is refused here
    if not role_arn.startswith("arn:"):
        raise InvalidInputError(f"--role-arn {role_arn!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME).")
    pairs, source = run_pairs(catalog, config.val_fraction, config.test_fraction, config.batch_size)
    job_name = job_name or "carmatch-" + new_run_id()[4:].replace("_", "-")
    prefix = prefix.strip("/")
    model_config = Path(config.model) if config.model.endswith(".json") else None
    channels = upload_dataset(s3, pairs, bucket, prefix, job_name, model_config, progress)
    source_uri, base_uri = _upload_code(s3, config, bucket, f"{prefix}/jobs/{job_name}", region)
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
        "StoppingCondition": {"MaxRuntimeInSeconds": int(max_runtime_s)},
        "Tags": [{"Key": "app", "Value": "carmatch"}],
        **network.request(),
    }
    arn = _create_job(sm, request, region)
    job_config = {"arn": arn, "instance_type": instance_type, "data_source": source, "bucket": bucket, "prefix": prefix}
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


def _upload_code(s3: Any, config: TrainConfig, bucket: str, job_prefix: str, region: str) -> tuple[str, str | None]:
    """Upload sourcedir.tar.gz (and a local base checkpoint); returns (source URI, ``base`` channel URI or None)."""
    from botocore.exceptions import BotoCoreError, ClientError

    base_uri = None
    try:
        source_key = f"{job_prefix}/source/sourcedir.tar.gz"
        s3.put_object(Bucket=bucket, Key=source_key, Body=package_source())
        if config.pretrained != "none" and Path(config.pretrained).is_file():
            base_key = f"{job_prefix}/base/{Path(config.pretrained).name}"
            s3.upload_file(str(config.pretrained), bucket, base_key)  # streamed from disk, in parts
            base_uri = f"s3://{bucket}/{job_prefix}/base/"
    except (BotoCoreError, ClientError) as exc:
        raise _aws("upload the training code", region)(exc) from exc
    return f"s3://{bucket}/{source_key}", base_uri


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


def sagemaker_clients(region: str) -> tuple[Any, Any]:
    """(sagemaker, s3) boto3 clients for ``region``."""
    from carmatch.aws import make_client

    return make_client("sagemaker", region), make_client("s3", region)
