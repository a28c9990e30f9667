"""Provisioned throughput for a fine-tuned Titan model: the only way Bedrock serves a custom Titan model.

``titan provision`` states what the throughput will cost per hour, day and month before it creates it
(``CreateProvisionedModelThroughput``); ``titan deprovision`` deletes it (``DeleteProvisionedModelThroughput``)
so the hourly charge stops. The provisioned model's ARN is kept on the job's registry record, and
``CARMATCH_MODEL=bedrock/<that ARN>`` searches with it.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from carmatch.catalog import Catalog
from carmatch.catalog.models import ModelRecord
from carmatch.cloud.titan_pricing import listed_rate
from carmatch.errors import InvalidInputError, NotFoundError
from carmatch.training import registry

log = logging.getLogger(__name__)

HOURS_PER_DAY = 24
HOURS_PER_MONTH = 730  # AWS bills a month as 730 hours
COMMITMENTS = {"none": None, "1-month": "OneMonth", "6-months": "SixMonths"}  # CLI word -> API value
PRICING_PAGE = "https://aws.amazon.com/bedrock/pricing/"
PROVISIONED_KEY = registry.PROVISIONED_KEY  # where the registry record keeps the ARN
_NAME = re.compile(r"[0-9a-zA-Z][a-zA-Z0-9_.\-]{0,62}")  # provisionedModelName pattern (botocore model)


@dataclass(frozen=True)
class ProvisionPlan:
    """What ``titan provision`` will create, and what it will cost."""

    job: str
    model_arn: str
    name: str
    units: int
    commitment: str  # a key of COMMITMENTS
    hourly_usd_per_unit: float
    rate_source: str = "--hourly-usd"  # or the Price List product the rate came from

    @property
    def hourly_usd(self) -> float:
        """The charge per hour for all units."""
        return self.units * self.hourly_usd_per_unit

    def statement(self) -> str:
        """The cost, said before anything is created."""
        per_hour = self.hourly_usd
        term = "" if self.commitment == "none" else f" You commit to {self.commitment}: it cannot be deleted sooner."
        return (
            f"Provisioned throughput {self.name} for {self.model_arn}: {self.units} model unit(s) at "
            f"${self.hourly_usd_per_unit:,.2f}/hour each ({self.rate_source}) = ${per_hour:,.2f}/hour, "
            f"${per_hour * HOURS_PER_DAY:,.2f}/day, "
            f"about ${per_hour * HOURS_PER_MONTH:,.0f}/month, billed every hour, used or not, until "
            f"`.venv/bin/carmatch titan deprovision {self.job}` deletes it.{term}"
        )


def plan_provision(
    catalog: Catalog,
    job: str,
    units: int,
    commitment: str,
    hourly_usd_per_unit: float | None,
    name: str | None = None,
    pricing: Any = None,
    region: str = "",
) -> ProvisionPlan:
    """Check everything ``titan provision`` needs; nothing is created.

    Without ``hourly_usd_per_unit``, the rate is read from the AWS Price List with the ``pricing``
    client (after every local check passed); when it lists none, the ``--hourly-usd`` is asked for.
    """
    record = _titan_record(catalog, job)
    model_arn = (record.metrics or {}).get("custom_model_arn")
    if record.status != "ready" or not model_arn:
        raise InvalidInputError(
            f"Titan job {job} has no custom model yet (status {record.status}). "
            "Check it first: .venv/bin/carmatch titan status"
        )
    if record.config.get(PROVISIONED_KEY):
        raise InvalidInputError(
            f"Titan job {job} already has provisioned throughput {record.config[PROVISIONED_KEY]}; "
            f"delete it first: .venv/bin/carmatch titan deprovision {job}"
        )
    if units < 1:
        raise InvalidInputError(field="units", value=units, limit=1, reason=f"{units} must be at least 1")
    if commitment not in COMMITMENTS:
        raise InvalidInputError(field="commitment", value=commitment, reason=f"must be one of {', '.join(COMMITMENTS)}")
    name = name or f"{job}-pt"
    if not _NAME.fullmatch(name):
        raise InvalidInputError(field="name", value=name, reason="must be 1-63 letters, digits, '.', '_' or '-'")
    if hourly_usd_per_unit is not None or pricing is None:
        return ProvisionPlan(job, model_arn, name, units, commitment, _given_rate(hourly_usd_per_unit))
    listed = listed_rate(pricing, region, commitment)
    if listed.usd_per_hour is None:
        raise _given_rate_needed(None, f"{listed.problem}. ")
    return ProvisionPlan(
        job, model_arn, name, units, commitment, listed.usd_per_hour, f"AWS Price List: {listed.usage_type}"
    )


def _given_rate(hourly_usd_per_unit: float | None) -> float:
    """The ``--hourly-usd`` rate when it is a positive number."""
    if hourly_usd_per_unit is None or not math.isfinite(hourly_usd_per_unit) or hourly_usd_per_unit <= 0:
        raise _given_rate_needed(hourly_usd_per_unit)
    return hourly_usd_per_unit


def _given_rate_needed(value: float | None, why: str = "") -> InvalidInputError:
    """The refusal asking for ``--hourly-usd``, with why the Price List gave no rate."""
    return InvalidInputError(
        field="hourly_usd",
        value=value,
        reason=f"is needed so the cost can be stated before anything is created: {why}copy the per-model-unit "
        "hourly rate of Titan Multimodal Embeddings custom models for your region and commitment "
        f"from {PRICING_PAGE}",
    )


def provision(bedrock: Any, catalog: Catalog, plan: ProvisionPlan, region: str = "") -> str:
    """Create the provisioned throughput of ``plan`` and keep its ARN on the job's record."""
    from botocore.exceptions import BotoCoreError, ClientError

    from carmatch.aws import explain_aws_error

    request: dict[str, Any] = {
        "modelUnits": plan.units,
        "provisionedModelName": plan.name,
        "modelId": plan.model_arn,
        "clientRequestToken": plan.name,
    }
    if COMMITMENTS[plan.commitment]:
        request["commitmentDuration"] = COMMITMENTS[plan.commitment]
    try:
        arn = str(bedrock.create_provisioned_model_throughput(**request)["provisionedModelArn"])
    except (BotoCoreError, ClientError) as exc:
        raise explain_aws_error(exc, f"create provisioned throughput for {plan.job}", region) from exc
    _keep_arn(catalog, plan.job, arn)
    log.info("Created provisioned throughput %s (%s/hour)", arn, plan.hourly_usd)
    return arn


def deprovision(bedrock: Any, catalog: Catalog, job: str, region: str = "") -> str:
    """Delete the job's provisioned throughput (the hourly charge stops); returns its ARN."""
    from botocore.exceptions import BotoCoreError, ClientError

    from carmatch.aws import explain_aws_error

    record = _titan_record(catalog, job)
    arn = record.config.get(PROVISIONED_KEY)
    if not arn:
        raise NotFoundError(f"Titan job {job} has no provisioned throughput recorded; nothing to delete.")
    try:
        bedrock.delete_provisioned_model_throughput(provisionedModelId=arn)
    except (BotoCoreError, ClientError) as exc:
        raise explain_aws_error(exc, f"delete provisioned throughput {arn}", region) from exc
    _keep_arn(catalog, job, None)
    log.info("Deleted provisioned throughput %s", arn)
    return str(arn)


def _titan_record(catalog: Catalog, job: str) -> ModelRecord:
    """The registry record of a Titan job started from this home; NotFoundError otherwise."""
    record = next((r for r in registry.list_models(catalog) if r.kind == "titan" and r.id == job), None)
    if record is None:
        raise NotFoundError(
            f"No Titan job {job!r} was started from this carmatch home. See: .venv/bin/carmatch titan status"
        )
    return record


def _keep_arn(catalog: Catalog, job: str, arn: str | None) -> None:
    """Record (or forget, with None) the job's provisioned-throughput ARN."""
    record = _titan_record(catalog, job)
    config = {k: v for k, v in record.config.items() if k != PROVISIONED_KEY}
    if arn:
        config[PROVISIONED_KEY] = arn
    registry.register_model(
        catalog,
        job,
        record.kind,
        record.base_model,
        record.base_pretrained,
        record.status,
        record.checkpoint,
        config,
        record.metrics,
    )
