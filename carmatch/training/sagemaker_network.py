"""Where a SageMaker training job's container runs, refused up front when the job could not work there.

The job installs open_clip with pip and may download weights from the Hugging Face Hub, so it needs
the internet: network isolation never works, and a VPC works only when its subnets reach the internet
through a NAT gateway (SageMaker gives training containers in a VPC no public address).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carmatch.errors import InvalidInputError

JOB_NEEDS = "the job installs open_clip with pip and may download weights from the Hugging Face Hub"


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
                field="vpc_config",
                value=self.vpc_config,
                reason=f"needs internet access through a NAT gateway: {JOB_NEEDS}. Give the subnets a NAT route "
                "and say so (vpc_has_internet), or leave the VPC out",
            )

    def request(self) -> dict[str, Any]:
        """The CreateTrainingJob fields for this network."""
        return {"VpcConfig": self.vpc_config} if self.vpc_config else {}
