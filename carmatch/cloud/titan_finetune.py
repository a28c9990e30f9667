"""The Titan alternative: fine-tune ``amazon.titan-embed-image-v1`` with a Bedrock model customization job.

Training data is the Titan multimodal JSONL exported by the Dataset tab (``carmatch.dataset.export_titan``).
Hyperparameters are checked against Bedrock's documented ranges for Titan Multimodal Embeddings G1
and sent as strings. Jobs are recorded in the catalog's ``models`` table (kind ``titan``).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from carmatch.aws import parse_s3_uri
from carmatch.catalog import Catalog
from carmatch.errors import InvalidInputError, NotFoundError, Problem
from carmatch.training import registry

log = logging.getLogger(__name__)

# The customizable base model: the ":0" version of Titan Multimodal Embeddings G1 (Bedrock's table of
# models supported for fine-tuning), offered for customization in these regions.
TITAN_BASE_MODEL = "amazon.titan-embed-image-v1:0"
TITAN_CUSTOMIZATION_REGIONS = ("us-east-1", "us-west-2")
EPOCHS_RANGE = (1, 100)  # no default: Bedrock requires epochCount
EPOCHS_AUTO = "Auto"  # epochCount may also be Auto: Bedrock chooses from the data set's size
BATCH_SIZE_RANGE = (256, 9216)
DEFAULT_BATCH_SIZE = 576
LEARNING_RATE_RANGE = (5e-8, 1.0)
DEFAULT_LEARNING_RATE = 5e-5
HIGH_LR_FACTOR = 20  # warn when the learning rate is this many times Titan's default or more
STATUS_MAP = {
    "InProgress": "running",
    "Completed": "ready",
    "Failed": "failed",
    "Stopping": "running",
    "Stopped": "cancelled",
}


@dataclass(frozen=True)
class TitanHyperparameters:
    """Titan Multimodal Embeddings G1 customization hyperparameters."""

    epoch_count: int | str  # 1-100, or "auto": Bedrock picks (epochCount "Auto")
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float = DEFAULT_LEARNING_RATE

    def validate(self) -> list[str]:
        """Raise InvalidInputError outside Bedrock's ranges; return warnings for legal but risky values."""
        problems = []
        if isinstance(self.epoch_count, str):
            if self.epoch_count.strip().lower() != EPOCHS_AUTO.lower():
                reason = f"{self.epoch_count!r} must be a number {EPOCHS_RANGE[0]}–{EPOCHS_RANGE[1]} or auto"
                problems.append(Problem("epochCount", self.epoch_count, EPOCHS_RANGE, reason))
        elif not EPOCHS_RANGE[0] <= self.epoch_count <= EPOCHS_RANGE[1]:
            reason = f"{self.epoch_count} must be {EPOCHS_RANGE[0]}–{EPOCHS_RANGE[1]}"
            problems.append(Problem("epochCount", self.epoch_count, EPOCHS_RANGE, reason))
        if not BATCH_SIZE_RANGE[0] <= self.batch_size <= BATCH_SIZE_RANGE[1]:
            smallest, largest = BATCH_SIZE_RANGE
            reason = f"{self.batch_size} must be {smallest}–{largest:,} (default {DEFAULT_BATCH_SIZE})"
            problems.append(Problem("batchSize", self.batch_size, BATCH_SIZE_RANGE, reason))
        if not (
            math.isfinite(self.learning_rate) and LEARNING_RATE_RANGE[0] <= self.learning_rate <= LEARNING_RATE_RANGE[1]
        ):
            low, high = LEARNING_RATE_RANGE
            reason = f"{self.learning_rate:g} must be {low:g}–{high:g} (default {DEFAULT_LEARNING_RATE:g})"
            problems.append(Problem("learningRate", self.learning_rate, LEARNING_RATE_RANGE, reason))
        if problems:  # each field is named as Bedrock names the hyperparameter
            raise InvalidInputError("Invalid Titan hyperparameters", problems=problems)
        warnings = []
        if self.learning_rate >= DEFAULT_LEARNING_RATE * HIGH_LR_FACTOR:
            warnings.append(
                f"learningRate {self.learning_rate:g} is {self.learning_rate / DEFAULT_LEARNING_RATE:.0f}× Titan's "
                f"default of {DEFAULT_LEARNING_RATE:g}; such a rate usually wrecks a pretrained embedding model. "
                f"Start from {DEFAULT_LEARNING_RATE:g}."
            )
        return warnings

    def as_api(self) -> dict[str, str]:
        """The ``hyperParameters`` map Bedrock expects (every value a string)."""
        return {
            "epochCount": EPOCHS_AUTO if isinstance(self.epoch_count, str) else str(self.epoch_count),
            "batchSize": str(self.batch_size),
            "learningRate": f"{self.learning_rate:g}",
        }


def _s3_uri(uri: str, field: str, label: str, require_key: bool = True) -> str:
    """``uri`` checked by the one S3 parser (S3UriError names ``field``), whitespace removed."""
    example = "s3://my-bucket/titan/train.jsonl" if require_key else "s3://my-bucket/titan/output/"
    return str(parse_s3_uri(uri, require_key=require_key, field=field, label=label, example=example))


def _check_region(region: str | None) -> None:
    """Refuse a region where Bedrock does not customize Titan Multimodal Embeddings (before any call)."""
    if region and region not in TITAN_CUSTOMIZATION_REGIONS:
        raise InvalidInputError(
            field="aws_region",
            value=region,
            label="AWS_REGION",
            reason="does not offer Titan Multimodal Embeddings fine-tuning; "
            f"use {' or '.join(TITAN_CUSTOMIZATION_REGIONS)}",
        )


def _check_validation(validation_uri: str | None) -> str | None:
    """The validation data URI, or None: sent only when given (Bedrock's docs list no validation set for image
    embedding customization, so carmatch never adds one by itself)."""
    if not (validation_uri or "").strip():
        return None
    return _s3_uri(validation_uri or "", "validation", "The validation data URI")


def start_finetune(
    bedrock: Any,
    catalog: Catalog,
    train_uri: str,
    role_arn: str,
    hyperparameters: TitanHyperparameters,
    validation_uri: str | None = None,
    output_uri: str | None = None,
    job_name: str | None = None,
    custom_model_name: str | None = None,
    region: str | None = None,
) -> tuple[str, list[str]]:
    """Create the customization job and record it; returns (job ARN, warnings)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from carmatch.aws import explain_aws_error

    warnings = hyperparameters.validate()
    for warning in warnings:
        log.warning(warning)
    _check_region(region)
    train_uri = _s3_uri(train_uri, "train", "The training data URI")
    validation_uri = _check_validation(validation_uri)
    if not role_arn.startswith("arn:"):
        reason = f"{role_arn!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        raise InvalidInputError(field="role_arn", value=role_arn, label="Role ARN", reason=reason)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    job_name = job_name or f"carmatch-titan-{stamp}"
    custom_model_name = custom_model_name or f"carmatch-titan-{stamp}"
    output_uri = output_uri or train_uri.rsplit("/", 1)[0] + f"/titan-output/{job_name}/"
    output_uri = _s3_uri(output_uri, "output", "The output URI", require_key=False)
    request = _customization_request(
        job_name, custom_model_name, role_arn, train_uri, validation_uri, output_uri, hyperparameters
    )
    try:
        arn = bedrock.create_model_customization_job(**request)["jobArn"]
    except (BotoCoreError, ClientError) as exc:
        raise explain_aws_error(exc, f"start Titan fine-tuning job {job_name}", region) from exc
    registry.register_model(
        catalog,
        job_name,
        "titan",
        TITAN_BASE_MODEL,
        "bedrock",
        "submitted",
        config={
            "jobArn": arn,
            "customModelName": custom_model_name,
            "train": train_uri,
            "validation": validation_uri,
            "output": output_uri,
            "hyperParameters": hyperparameters.as_api(),
        },
    )
    log.info("Started Titan customization job %s (%s)", job_name, arn)
    return arn, warnings


def _customization_request(
    job_name: str,
    custom_model_name: str,
    role_arn: str,
    train_uri: str,
    validation_uri: str | None,
    output_uri: str,
    hyperparameters: TitanHyperparameters,
) -> dict[str, Any]:
    """The ``create_model_customization_job`` arguments that fine-tune Titan on ``train_uri``."""
    request: dict[str, Any] = {
        "jobName": job_name,
        "customModelName": custom_model_name,
        "roleArn": role_arn,
        "baseModelIdentifier": TITAN_BASE_MODEL,
        "customizationType": "FINE_TUNING",
        "trainingDataConfig": {"s3Uri": train_uri},
        "outputDataConfig": {"s3Uri": output_uri},
        "hyperParameters": hyperparameters.as_api(),
    }
    if validation_uri is not None:
        request["validationDataConfig"] = {"validators": [{"s3Uri": validation_uri}]}
    return request


def job_status(
    bedrock: Any, catalog: Catalog, job: str | None = None, region: str | None = None
) -> list[dict[str, Any]]:
    """Bedrock's status of one Titan job (name or ARN) or of every recorded one; updates the registry."""
    from botocore.exceptions import BotoCoreError, ClientError

    from carmatch.aws import explain_aws_error

    records = [r for r in registry.list_models(catalog) if r.kind == "titan"]
    if job is not None:
        records = [r for r in records if job in (r.id, r.config.get("jobArn"))]
        if not records:
            raise NotFoundError(
                f"No Titan job {job!r} was started from this carmatch home. See: .venv/bin/carmatch titan status"
            )
    out = []
    for record in records:
        try:
            d = bedrock.get_model_customization_job(jobIdentifier=record.config.get("jobArn") or record.id)
        except (BotoCoreError, ClientError) as exc:
            raise explain_aws_error(exc, f"get the status of Titan job {record.id}", region) from exc
        status = d.get("status", "InProgress")
        info = {
            "job": record.id,
            "status": status,
            "custom_model_arn": d.get("outputModelArn"),
            "custom_model_name": d.get("outputModelName"),
            "failure": d.get("failureMessage"),
            "training_metrics": d.get("trainingMetrics"),
            "validation_metrics": d.get("validationMetrics"),
        }
        registry.set_status(
            catalog,
            record.id,
            STATUS_MAP.get(status, "running"),
            metrics={k: v for k, v in info.items() if v is not None and k != "job"},
        )
        out.append(info)
    return out
