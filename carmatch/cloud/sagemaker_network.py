"""Where a SageMaker training job's container runs, refused up front when the job could not work there.

The job installs open_clip with pip and may download weights from the Hugging Face Hub, so it needs
the internet: network isolation never works, and a VPC works only when its subnets reach the internet
through a NAT gateway (SageMaker gives training containers in a VPC no public address).
``train --sagemaker --subnets ... --security-groups ... --vpc-has-internet`` runs the job in a VPC;
nothing in carmatch turns network isolation on (the refusal guards callers of the library).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from carmatch.errors import InvalidInputError, Problem

JOB_NEEDS = "the job installs open_clip with pip and may download weights from the Hugging Face Hub"
MAX_SUBNETS = 16  # CreateTrainingJob VpcConfig.Subnets (botocore's service model)
MAX_SECURITY_GROUPS = 5  # VpcConfig.SecurityGroupIds
_ID = re.compile(r"[-0-9a-zA-Z]{1,32}")  # the pattern of each id in both lists


@dataclass(frozen=True)
class NetworkPlan:
    """SageMaker's default network, or a VPC the user says reaches the internet."""

    network_isolation: bool = False
    vpc_config: dict[str, Any] | None = None  # {"Subnets": [...], "SecurityGroupIds": [...]}
    vpc_has_internet: bool = False  # the subnets route 0.0.0.0/0 through a NAT gateway

    def check(self) -> None:
        """Refuse, before anything is uploaded, a network the job cannot work in."""
        if self.network_isolation:
            raise InvalidInputError(
                field="network_isolation", value=True, reason=f"cannot be used: {JOB_NEEDS}, which isolation blocks"
            )
        if self.vpc_config and not self.vpc_has_internet:
            raise InvalidInputError(
                field="vpc_has_internet",
                value=False,
                reason=f"is not confirmed, and a job in a VPC needs internet access through a NAT gateway: "
                f"{JOB_NEEDS}. Give the subnets a NAT route and confirm it, or leave the VPC out",
            )

    def request(self) -> dict[str, Any]:
        """The CreateTrainingJob fields for this network."""
        return {"VpcConfig": self.vpc_config} if self.vpc_config else {}


def _ids(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def vpc_plan(subnets: str | None, security_groups: str | None, has_internet: bool = False) -> NetworkPlan:
    """The network that comma-separated subnet and security-group ids ask for (none: SageMaker's default)."""
    subnet_ids, group_ids = _ids(subnets), _ids(security_groups)
    if not subnet_ids and not group_ids:
        if has_internet:
            raise InvalidInputError(field="vpc_has_internet", value=True, reason="applies only with subnets")
        return NetworkPlan()
    problems = [
        Problem(field, ids, (1, most), f"needs 1 to {most} ids, each letters, digits and '-' (got {text!r})")
        for field, ids, most, text in (
            ("subnets", subnet_ids, MAX_SUBNETS, subnets),
            ("security_groups", group_ids, MAX_SECURITY_GROUPS, security_groups),
        )
        if not 1 <= len(ids) <= most or not all(_ID.fullmatch(i) for i in ids)
    ]
    if problems:
        raise InvalidInputError("A SageMaker VPC needs both subnets and security groups", problems=problems)
    vpc = {"Subnets": subnet_ids, "SecurityGroupIds": group_ids}
    return NetworkPlan(vpc_config=vpc, vpc_has_internet=has_internet)
