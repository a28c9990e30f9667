"""``aws setup``: deploy carmatch's CloudFormation stack (deploy/aws/carmatch.yaml) and write its outputs into .env.

One stack holds the bucket and the three service roles; its outputs become ``CARMATCH_BATCH_BUCKET`` and the
``CARMATCH_*_ROLE_ARN`` settings. ``.env`` is rewritten atomically with the user's other lines kept as they were.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carmatch.atomic import write_bytes
from carmatch.bedrock_models import base_model
from carmatch.errors import AwsError, InvalidInputError

log = logging.getLogger(__name__)

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "deploy" / "aws" / "carmatch.yaml"
DEFAULT_STACK = "carmatch"
CAPABILITIES = ["CAPABILITY_NAMED_IAM"]  # the stack names its roles
OUTPUT_SETTINGS = {  # stack output -> the .env variable it fills
    "BucketName": "CARMATCH_BATCH_BUCKET",
    "BatchRoleArn": "CARMATCH_BATCH_ROLE_ARN",
    "TitanRoleArn": "CARMATCH_TITAN_ROLE_ARN",
    "SageMakerRoleArn": "CARMATCH_SAGEMAKER_ROLE_ARN",
}
_STACK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,127}")
_ENV_KEY = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


@dataclass
class SetupPlan:
    """What ``aws setup`` would deploy: the stack, its parameters, the template's resources and the region."""

    stack_name: str
    region: str
    parameters: dict[str, str]
    resources: dict[str, str] = field(default_factory=dict)  # logical id -> type

    def text(self) -> str:
        """The plan as ``--dry-run`` prints it."""
        lines = [f"Stack {self.stack_name} in {self.region} from {TEMPLATE_PATH}:"]
        lines += [f"  parameter {k} = {v!r}" for k, v in self.parameters.items()]
        lines += [f"  resource  {k} ({v})" for k, v in self.resources.items()]
        lines += [f"  then .env gets {', '.join(OUTPUT_SETTINGS.values())}"]
        return "\n".join(lines)


def template_body() -> str:
    """The stack's template as shipped in the repository."""
    return TEMPLATE_PATH.read_text(encoding="utf-8")


def plan(stack_name: str, region: str, caption_model: str, bucket: str = "", name_prefix: str = "") -> SetupPlan:
    """The stack ``aws setup`` deploys for these settings; InvalidInputError for a name CloudFormation refuses."""
    import yaml

    if not _STACK_NAME.fullmatch(stack_name):
        raise InvalidInputError(
            field="stack_name",
            value=stack_name,
            label="--stack-name",
            reason="must start with a letter and hold only letters, digits and hyphens (128 at most)",
        )
    parameters = {"CaptionModelId": base_model(caption_model), "CaptionProfileId": caption_model}
    if bucket:
        parameters["BucketName"] = bucket
    if name_prefix:
        parameters["NamePrefix"] = name_prefix
    resources = {k: v["Type"] for k, v in yaml.safe_load(template_body())["Resources"].items()}
    return SetupPlan(stack_name, region, parameters, resources)


def _stack_exists(cfn: Any, name: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return False
        raise
    return bool(stacks) and stacks[0]["StackStatus"] != "DELETE_COMPLETE"


def deploy(cfn: Any, setup: SetupPlan) -> dict[str, str]:
    """Create or update the stack, wait for it, and return its outputs (output key -> value)."""
    from botocore.exceptions import BotoCoreError, ClientError, WaiterError

    request = {
        "StackName": setup.stack_name,
        "TemplateBody": template_body(),
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in setup.parameters.items()],
        "Capabilities": CAPABILITIES,
    }
    try:
        if _stack_exists(cfn, setup.stack_name):
            try:
                cfn.update_stack(**request)
                cfn.get_waiter("stack_update_complete").wait(StackName=setup.stack_name)
            except ClientError as exc:
                if "No updates are to be performed" not in str(exc):
                    raise
        else:
            cfn.create_stack(**request, Tags=[{"Key": "app", "Value": "carmatch"}])
            cfn.get_waiter("stack_create_complete").wait(StackName=setup.stack_name)
        stack = cfn.describe_stacks(StackName=setup.stack_name)["Stacks"][0]
    except WaiterError as exc:
        raise AwsError(
            f"Stack {setup.stack_name} did not deploy ({exc}). Its events in the CloudFormation console "
            "say which resource failed; fix it and run aws setup again."
        ) from exc
    except (BotoCoreError, ClientError) as exc:
        from carmatch.aws import explain_aws_error

        raise explain_aws_error(exc, f"deploy stack {setup.stack_name}", setup.region) from exc
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def env_values(outputs: dict[str, str], region: str) -> dict[str, str]:
    """The .env lines the stack's outputs give (plus AWS_REGION, the region it was deployed in)."""
    values = {OUTPUT_SETTINGS[k]: v for k, v in outputs.items() if k in OUTPUT_SETTINGS}
    return {"AWS_REGION": region, **values}


def write_env(path: Path, values: dict[str, str]) -> None:
    """Set ``values`` in the .env file at ``path``: replace each key's line, append new ones, keep every other line."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    remaining = dict(values)
    out = []
    for line in lines:
        match = _ENV_KEY.match(line)
        if match and match.group(1) in remaining:
            out.append(f"{match.group(1)}={remaining.pop(match.group(1))}")
        else:
            out.append(line)
    out += [f"{key}={value}" for key, value in remaining.items()]
    write_bytes(path, ("\n".join(out) + "\n").encode("utf-8"))
