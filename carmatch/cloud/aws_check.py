"""``aws check``: what will work on this AWS account before anything is spent, one line per fact.

Each check reads only (``sts:GetCallerIdentity``, Bedrock's model and access reads, Service Quotas,
``s3:HeadBucket``, ``iam:GetRole``, ``iam:SimulatePrincipalPolicy``) and says OK, a warning, or a problem with
its fix. Clients come from a factory so tests hand in stubbed ones. The Bedrock lines live in
``aws_check_models``; SageMaker's quota line in ``sagemaker_quota``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from typing import Any
from urllib.parse import unquote

from carmatch.aws import CREDENTIALS_HELP, normalise_bucket
from carmatch.cloud.aws_check_models import (
    BEDROCK_MODEL_PREFIX,
    access_line,
    check_caption_model,
    check_marketplace_permissions,
    check_region,
    check_titan_model,
)
from carmatch.cloud.check_lines import OK, PROBLEM, WARNING, CheckLine, ClientFactory, error_code, error_message
from carmatch.config import Settings
from carmatch.errors import InvalidInputError

log = logging.getLogger(__name__)

BEDROCK_PRINCIPAL = "bedrock.amazonaws.com"
SAGEMAKER_PRINCIPAL = "sagemaker.amazonaws.com"
BEDROCK_BATCH_PRINCIPAL = BEDROCK_PRINCIPAL
SAGEMAKER_ROLE_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:ListBucket")  # what a training job does in the bucket
__all__ = ["OK", "PROBLEM", "WARNING", "CheckLine", "access_line", "check_caption_model", "check_region"]


def check_credentials(sts: Any) -> CheckLine:
    """Who carmatch acts as (``sts:GetCallerIdentity`` needs no permission); the ARN ends the detail."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        who = sts.get_caller_identity()
    except (BotoCoreError, ClientError) as exc:
        return CheckLine(
            "credentials", PROBLEM, f"not usable ({error_code(exc)}: {error_message(exc)}).", CREDENTIALS_HELP
        )
    return CheckLine("credentials", OK, f"{who['Arn']} (account {who['Account']}).")


def check_bucket(s3: Any, bucket_text: str, region: str, name: str = "batch bucket") -> CheckLine:
    """That the bucket exists, carmatch may reach it, and it lives in ``region`` (Bedrock batch needs that)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        bucket = normalise_bucket(bucket_text, field="batch_bucket", label="CARMATCH_BATCH_BUCKET")
    except InvalidInputError as exc:
        return CheckLine(name, PROBLEM, str(exc), "Set CARMATCH_BATCH_BUCKET to a bucket name like my-bucket.")
    try:
        head = s3.head_bucket(Bucket=bucket)
    except (BotoCoreError, ClientError) as exc:
        code = error_code(exc)
        fix = "Create it in this region, or set CARMATCH_BATCH_BUCKET to one you own."
        if code in ("403", "AccessDenied"):
            fix = "Grant s3:ListBucket, s3:GetObject and s3:PutObject on it (docs/aws-setup.md: IAM policies)."
        return CheckLine(name, PROBLEM, f"s3://{bucket} cannot be reached ({code}).", fix)
    where = head.get("BucketRegion", region)
    if where != region:
        return CheckLine(
            name,
            PROBLEM,
            f"s3://{bucket} is in {where}, not {region}.",
            f"Use a bucket in {region} or set AWS_REGION={where}.",
        )
    return CheckLine(name, OK, f"s3://{bucket} in {where}.")


def _trusts(document: Any, principal: str) -> bool:
    """True when a trust policy (dict or URL-encoded JSON) lets ``principal`` assume the role."""
    if isinstance(document, str):
        document = json.loads(unquote(document))
    for statement in document.get("Statement", []):
        services = statement.get("Principal", {}).get("Service", [])
        services = [services] if isinstance(services, str) else services
        if statement.get("Effect") == "Allow" and principal in services:
            return True
    return False


def check_role(iam: Any, role_arn: str, name: str = "batch role", principal: str = BEDROCK_PRINCIPAL) -> CheckLine:
    """That the role exists and trusts ``principal``; an unreadable role is a warning, not a problem."""
    from botocore.exceptions import BotoCoreError, ClientError

    if not role_arn.startswith("arn:") or ":role/" not in role_arn:
        return CheckLine(name, PROBLEM, f"{role_arn!r} is not an IAM role ARN.", "Use arn:aws:iam::ACCOUNT:role/NAME.")
    role_name = role_arn.rsplit("/", 1)[1]
    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except (BotoCoreError, ClientError) as exc:
        if error_code(exc) == "NoSuchEntity":
            return CheckLine(
                name,
                PROBLEM,
                f"{role_arn} does not exist.",
                "Create it: .venv/bin/carmatch aws setup (or docs/aws-setup.md).",
            )
        return CheckLine(
            name, WARNING, f"could not read {role_arn} ({error_code(exc)}).", "Grant iam:GetRole to check it."
        )
    if not _trusts(role.get("AssumeRolePolicyDocument", {}), principal):
        return CheckLine(
            name,
            PROBLEM,
            f"{role_arn} does not trust {principal}.",
            "Use the trust policy in docs/aws-setup.md (or deploy the stack: carmatch aws setup).",
        )
    return CheckLine(name, OK, f"{role_arn} trusts {principal}.")


def check_fine_tuning(region: str) -> CheckLine:
    """Whether ``region`` has SageMaker's PyTorch training image and Bedrock's Titan fine-tuning (local tables only)."""
    from carmatch.cloud.sagemaker_images import dlc_account
    from carmatch.cloud.titan_finetune import TITAN_CUSTOMIZATION_REGIONS

    try:
        sagemaker = f"SageMaker PyTorch image in {region} (registry {dlc_account(region)})"
    except InvalidInputError:
        return CheckLine(
            "fine-tuning",
            WARNING,
            f"no SageMaker PyTorch training image known in {region}.",
            "Train on SageMaker from another region, or pass --image-uri.",
        )
    if region not in TITAN_CUSTOMIZATION_REGIONS:
        where = " or ".join(TITAN_CUSTOMIZATION_REGIONS)
        return CheckLine(
            "fine-tuning",
            WARNING,
            f"{sagemaker}; Titan fine-tuning is not offered in {region}.",
            f"For titan finetune, use AWS_REGION={where}.",
        )
    return CheckLine("fine-tuning", OK, f"{sagemaker}; Titan fine-tuning offered.")


def check_role_permissions(iam: Any, role_arn: str, bucket: str, name: str = "sagemaker role") -> CheckLine:
    """That ``role_arn`` may read and write ``bucket`` (IAM's policy simulator; unreadable is a warning)."""
    from botocore.exceptions import BotoCoreError, ClientError

    resources = [f"arn:{role_arn.split(':')[1]}:s3:::{bucket}/*"]
    try:
        results = iam.simulate_principal_policy(
            PolicySourceArn=role_arn, ActionNames=list(SAGEMAKER_ROLE_ACTIONS[:2]), ResourceArns=resources
        )
    except (BotoCoreError, ClientError) as exc:
        return CheckLine(
            name, WARNING, f"could not simulate {role_arn} ({error_code(exc)}).", "Grant iam:SimulatePrincipalPolicy."
        )
    denied = [r["EvalActionName"] for r in results.get("EvaluationResults", []) if r["EvalDecision"] != "allowed"]
    if denied:
        return CheckLine(
            name,
            PROBLEM,
            f"{role_arn} may not {', '.join(denied)} in s3://{bucket}.",
            "Attach the permissions policy in docs/aws-setup.md (or deploy the stack: carmatch aws setup).",
        )
    return CheckLine(name, OK, f"{role_arn} may read and write s3://{bucket}.")


def _caller_arn(line: CheckLine) -> str:
    return line.detail.split(" ", 1)[0]


def run_checks(settings: Settings, make_client: ClientFactory, bedrock_regions: list[str]) -> list[CheckLine]:
    """Every check that applies to ``settings``; stops after the credentials when they do not work."""
    from carmatch.cloud.sagemaker_quota import check_training_quota

    lines = [check_credentials(make_client("sts"))]
    if lines[0].status == PROBLEM:
        return lines
    caller = _caller_arn(lines[0])
    lines.append(check_region(settings.aws_region, bedrock_regions))
    if lines[-1].status == PROBLEM:
        return lines
    bedrock = make_client("bedrock")
    model_lines = check_caption_model(
        bedrock, settings.caption_model, settings.aws_region, lambda: make_client("service-quotas")
    )
    lines.extend(model_lines)
    callable_model = not (len(model_lines) == 1 and model_lines[0].status == PROBLEM)  # else: fix the id first
    if callable_model and "anthropic." in settings.caption_model:
        lines.append(check_marketplace_permissions(make_client("iam"), caller))
    if settings.batch_bucket:
        lines.append(check_bucket(make_client("s3"), settings.batch_bucket, settings.aws_region))
    if settings.batch_role_arn:
        lines.append(check_role(make_client("iam"), settings.batch_role_arn))
    if settings.titan_role_arn:
        lines.append(check_role(make_client("iam"), settings.titan_role_arn, "titan role"))
    if settings.sagemaker_role_arn:
        iam = make_client("iam")
        lines.append(check_role(iam, settings.sagemaker_role_arn, "sagemaker role", SAGEMAKER_PRINCIPAL))
        if settings.batch_bucket and lines[-1].status == OK:
            lines.append(
                check_role_permissions(iam, settings.sagemaker_role_arn, normalise_bucket(settings.batch_bucket))
            )
        lines.append(check_training_quota(make_client("service-quotas"), settings.sagemaker_instance_type))
    if settings.model.startswith(BEDROCK_MODEL_PREFIX):
        lines.append(check_titan_model(bedrock, settings.model))
    lines.append(check_fine_tuning(settings.aws_region))
    return lines


def has_problems(lines: list[CheckLine]) -> bool:
    """True when any line is a problem (warnings alone still let work start)."""
    return any(line.status == PROBLEM for line in lines)


def as_dicts(lines: list[CheckLine]) -> list[dict[str, str]]:
    """The lines as JSON-ready dicts."""
    return [asdict(line) for line in lines]


def check_account(settings: Settings) -> list[CheckLine]:
    """:func:`run_checks` against the real account, with clients for ``settings.aws_region``."""
    from carmatch.aws import make_client, service_regions
    from carmatch.bedrock_models import region_partition

    regions = service_regions("bedrock", region_partition(settings.aws_region))
    return run_checks(settings, lambda service: make_client(service, settings.aws_region), regions)
