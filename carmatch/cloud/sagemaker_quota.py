"""SageMaker's training-instance quota, read from Service Quotas before anything is uploaded.

New accounts start with a quota of 0 for most GPU training instances; a job then fails with
``ResourceLimitExceeded`` only after the whole dataset went up. The quota is named
``<instance type> for training job usage`` (``ml.g5.xlarge for training job usage``); a spot job counts
against ``<instance type> for spot training job usage``.
"""

from __future__ import annotations

from typing import Any

from carmatch.cloud.check_lines import OK, PROBLEM, WARNING, CheckLine, error_code
from carmatch.errors import AwsError

SERVICE_CODE = "sagemaker"
QUOTA_CONSOLE = "https://console.aws.amazon.com/servicequotas/home/services/sagemaker/quotas"


def quota_name(instance_type: str, spot: bool = False) -> str:
    """The Service Quotas name of the training quota for ``instance_type``."""
    return f"{instance_type} for {'spot ' if spot else ''}training job usage"


def training_quota(quotas: Any, instance_type: str, spot: bool = False) -> tuple[str, str, float] | None:
    """(quota code, name, value) of the account's training quota for ``instance_type``; None when none is listed."""
    name = quota_name(instance_type, spot)
    for page in quotas.get_paginator("list_service_quotas").paginate(ServiceCode=SERVICE_CODE):
        for quota in page.get("Quotas", []):
            if quota.get("QuotaName") == name:
                return quota["QuotaCode"], name, float(quota.get("Value", 0))
    return None


def how_to_raise(code: str, name: str) -> str:
    """The command (and console page) that asks AWS for one more instance of quota ``name``."""
    return (
        f"aws service-quotas request-service-quota-increase --service-code {SERVICE_CODE} --quota-code {code} "
        f"--desired-value 1 (quota '{name}'), or {QUOTA_CONSOLE}"
    )


def require_training_quota(quotas: Any, instance_type: str, spot: bool = False) -> None:
    """AwsError naming the quota and how to raise it when the account may run no ``instance_type`` job."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        found = training_quota(quotas, instance_type, spot)
    except (BotoCoreError, ClientError) as exc:
        raise AwsError(
            f"Cannot read the SageMaker quota '{quota_name(instance_type, spot)}' ({error_code(exc)}): grant "
            "servicequotas:ListServiceQuotas, or pass --skip-quota-check if you know the quota is above 0."
        ) from exc
    if found is None:
        raise AwsError(
            f"SageMaker lists no quota '{quota_name(instance_type, spot)}' in this region: the instance type is "
            "not offered for training here. Pick another --instance-type or region."
        )
    code, name, value = found
    if value < 1:
        raise AwsError(
            f"This account may run 0 instances of {instance_type} for SageMaker training (quota '{name}' is "
            f"{value:g}; new accounts start at 0). Nothing was uploaded. Ask for 1: {how_to_raise(code, name)}."
        )


def check_training_quota(quotas: Any, instance_type: str, spot: bool = False) -> CheckLine:
    """``aws check``'s line for the training quota of ``instance_type``."""
    from botocore.exceptions import BotoCoreError, ClientError

    name = quota_name(instance_type, spot)
    try:
        found = training_quota(quotas, instance_type, spot)
    except (BotoCoreError, ClientError) as exc:
        return CheckLine(
            "sagemaker quota",
            WARNING,
            f"could not read '{name}' ({error_code(exc)}).",
            "Grant servicequotas:ListServiceQuotas.",
        )
    if found is None:
        return CheckLine(
            "sagemaker quota",
            PROBLEM,
            f"no quota '{name}' in this region.",
            "Set CARMATCH_SAGEMAKER_INSTANCE_TYPE to a type SageMaker trains on here.",
        )
    code, _, value = found
    if value < 1:
        return CheckLine(
            "sagemaker quota",
            PROBLEM,
            f"'{name}' is {value:g}: no training job can start.",
            how_to_raise(code, name) + ".",
        )
    return CheckLine("sagemaker quota", OK, f"'{name}' is {value:g}.")
