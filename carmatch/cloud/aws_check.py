"""``aws check``: what will work on this AWS account before anything is spent, one line per fact.

Each check reads only (``sts:GetCallerIdentity``, ``bedrock:GetInferenceProfile``, ``GetFoundationModel``,
``GetFoundationModelAvailability``, ``GetProvisionedModelThroughput``, ``s3:HeadBucket``, ``iam:GetRole``)
and says OK, a warning, or a problem with its fix. Clients come from a factory so tests hand in stubbed ones.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import unquote

from carmatch.aws import CREDENTIALS_HELP, normalise_bucket
from carmatch.config import (
    DEFAULT_CAPTION_MODEL,
    GLOBAL_PROFILE,
    Settings,
    caption_model_for_region,
    profile_geography,
    region_geographies,
)
from carmatch.errors import InvalidInputError

log = logging.getLogger(__name__)

OK, WARNING, PROBLEM = "ok", "warning", "problem"
BEDROCK_BATCH_PRINCIPAL = "bedrock.amazonaws.com"
BEDROCK_MODEL_PREFIX = "bedrock/"  # CARMATCH_MODEL=bedrock/<Titan model id or ARN>
TITAN_FOUNDATION_MODEL = "amazon.titan-embed-image-v1"
LIFECYCLE_HELP = "https://docs.aws.amazon.com/bedrock/latest/userguide/model-lifecycle.html"

ClientFactory = Callable[[str], Any]  # service name -> boto3 client


@dataclass(frozen=True)
class CheckLine:
    """One fact about the account: its status (ok / warning / problem), what was found, and the fix."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def text(self) -> str:
        """The line as a terminal or the app shows it."""
        mark = {OK: "OK     ", WARNING: "WARNING", PROBLEM: "PROBLEM"}[self.status]
        return f"{mark} {self.name}: {self.detail}" + (f" Fix: {self.fix}" if self.fix else "")


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else type(exc).__name__


def _message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Message", "")) or str(exc)
    return str(exc)


def check_credentials(sts: Any) -> CheckLine:
    """Who carmatch acts as (``sts:GetCallerIdentity`` needs no permission)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        who = sts.get_caller_identity()
    except (BotoCoreError, ClientError) as exc:
        return CheckLine("credentials", PROBLEM, f"not usable ({_code(exc)}: {_message(exc)}).", CREDENTIALS_HELP)
    return CheckLine("credentials", OK, f"{who['Arn']} (account {who['Account']}).")


def check_region(region: str, available: list[str]) -> CheckLine:
    """Whether Bedrock runs in ``region`` and which inference-profile geographies it can call."""
    if region not in available:
        return CheckLine(
            "region", PROBLEM, f"{region} has no Amazon Bedrock endpoint.", "Set AWS_REGION to e.g. us-east-1."
        )
    geographies = region_geographies(region)
    where = ", ".join(f"{g}." for g in geographies) if geographies else "global. only"
    return CheckLine("region", OK, f"{region} (inference profiles: {where}).")


def _profile_mismatch(model: str, region: str) -> CheckLine | None:
    """A problem line when ``model`` is a profile of another geography than ``region``'s."""
    geography = profile_geography(model)
    if geography is None or geography == GLOBAL_PROFILE or geography in region_geographies(region):
        return None
    base = model.partition(".")[2]
    better = caption_model_for_region(model, region)
    use = better if better != model else f"{GLOBAL_PROFILE}.{base}"
    return CheckLine(
        "caption model",
        PROBLEM,
        f"{model} is a {geography}. inference profile, which cannot be called from {region}.",
        f"Set CARMATCH_CAPTION_MODEL={use}.",
    )


def _lifecycle_line(details: dict[str, Any], model: str, region: str) -> CheckLine:
    """OK for an Active model; a warning naming the replacement for a Legacy one."""
    lifecycle = details.get("modelLifecycle", {})
    status = lifecycle.get("status", "ACTIVE")
    kinds = ", ".join(details.get("inferenceTypesSupported", [])) or "?"
    if status == "ACTIVE":
        return CheckLine("caption model", OK, f"{model}: Active (inference: {kinds}).")
    end = lifecycle.get("endOfLifeTime")
    when = f", end of life {end:%Y-%m-%d}" if end else ""
    replacement = caption_model_for_region(DEFAULT_CAPTION_MODEL, region)
    fix = f"Set CARMATCH_CAPTION_MODEL={replacement}." if replacement != model else f"See {LIFECYCLE_HELP}."
    return CheckLine("caption model", WARNING, f"{model} is {status.title()} on Bedrock{when}.", fix)


def check_caption_model(bedrock: Any, model: str, region: str) -> list[CheckLine]:
    """The caption model: its profile geography, that it exists here, its lifecycle and account access."""
    from botocore.exceptions import BotoCoreError, ClientError

    mismatch = _profile_mismatch(model, region)
    if mismatch is not None:
        return [mismatch]
    base = model.partition(".")[2] if profile_geography(model) else model
    lines: list[CheckLine] = []
    try:
        if base != model:
            profile = bedrock.get_inference_profile(inferenceProfileIdentifier=model)
            regions = sorted({m["modelArn"].split(":")[3] for m in profile.get("models", [])})
            routed = f"routes to {', '.join(regions)}" if regions else "routes to ?"
            lines.append(CheckLine("inference profile", OK, f"{model} {routed}."))
        details = bedrock.get_foundation_model(modelIdentifier=base)["modelDetails"]
        lines.append(_lifecycle_line(details, model, region))
        lines.append(access_line(bedrock.get_foundation_model_availability(modelId=base), base))
    except (BotoCoreError, ClientError) as exc:
        fix = "Check the model id against Bedrock's model list for this region, and the README's IAM policy."
        if _code(exc) in ("ResourceNotFoundException", "ValidationException"):
            example = caption_model_for_region(DEFAULT_CAPTION_MODEL, region)
            fix = f"Use a Claude model Bedrock offers in {region}, e.g. {example}."
        lines.append(CheckLine("caption model", PROBLEM, f"{model}: {_code(exc)}: {_message(exc)}", fix))
    return lines


def access_line(availability: dict[str, Any], model: str) -> CheckLine:
    """Whether this account may invoke ``model`` (Anthropic models need a one-time use-case form)."""
    authorized = availability.get("authorizationStatus") == "AUTHORIZED"
    agreed = availability.get("agreementAvailability", {}).get("status") == "AVAILABLE"
    entitled = availability.get("entitlementAvailability") == "AVAILABLE"
    if authorized and agreed and entitled:
        return CheckLine("model access", OK, f"{model} may be invoked by this account.")
    return CheckLine(
        "model access",
        PROBLEM,
        f"{model}: authorization {availability.get('authorizationStatus')}, agreement "
        f"{availability.get('agreementAvailability', {}).get('status')}, entitlement "
        f"{availability.get('entitlementAvailability')}.",
        "Open the model in the Bedrock console's model catalog and request access (Anthropic asks for a "
        "one-time use-case form).",
    )


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
        code = _code(exc)
        fix = "Create it in this region, or set CARMATCH_BATCH_BUCKET to one you own."
        if code in ("403", "AccessDenied"):
            fix = "Grant s3:ListBucket, s3:GetObject and s3:PutObject on it (README: IAM policies)."
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


def check_role(
    iam: Any, role_arn: str, name: str = "batch role", principal: str = BEDROCK_BATCH_PRINCIPAL
) -> CheckLine:
    """That the role exists and trusts ``principal``; an unreadable role is a warning, not a problem."""
    from botocore.exceptions import BotoCoreError, ClientError

    if not role_arn.startswith("arn:") or ":role/" not in role_arn:
        return CheckLine(name, PROBLEM, f"{role_arn!r} is not an IAM role ARN.", "Use arn:aws:iam::ACCOUNT:role/NAME.")
    role_name = role_arn.rsplit("/", 1)[1]
    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except (BotoCoreError, ClientError) as exc:
        if _code(exc) == "NoSuchEntity":
            return CheckLine(
                name, PROBLEM, f"{role_arn} does not exist.", "Create it as the README's IAM section shows."
            )
        return CheckLine(name, WARNING, f"could not read {role_arn} ({_code(exc)}).", "Grant iam:GetRole to check it.")
    if not _trusts(role.get("AssumeRolePolicyDocument", {}), principal):
        return CheckLine(
            name,
            PROBLEM,
            f"{role_arn} does not trust {principal}.",
            "Use the trust policy in the README's IAM section.",
        )
    return CheckLine(name, OK, f"{role_arn} trusts {principal}.")


def check_titan_model(bedrock: Any, model_setting: str) -> CheckLine:
    """The Titan model CARMATCH_MODEL names: a foundation model, or provisioned throughput that is InService."""
    from botocore.exceptions import BotoCoreError, ClientError

    model = model_setting.removeprefix(BEDROCK_MODEL_PREFIX)
    try:
        if ":provisioned-model/" in model:
            status = bedrock.get_provisioned_model_throughput(provisionedModelId=model)["status"]
            if status != "InService":
                return CheckLine("titan model", PROBLEM, f"{model} is {status}.", "Wait for InService: titan status.")
            return CheckLine("titan model", OK, f"{model} is InService.")
        if ":custom-model/" in model:
            return CheckLine(
                "titan model",
                PROBLEM,
                f"{model} is a custom model, which Bedrock serves only through provisioned throughput.",
                "Run: .venv/bin/carmatch titan provision, then set CARMATCH_MODEL=bedrock/<provisioned ARN>.",
            )
        details = bedrock.get_foundation_model(modelIdentifier=model)["modelDetails"]
    except (BotoCoreError, ClientError) as exc:
        fix = f"Use CARMATCH_MODEL={BEDROCK_MODEL_PREFIX}{TITAN_FOUNDATION_MODEL} or a provisioned-throughput ARN."
        return CheckLine("titan model", PROBLEM, f"{model}: {_code(exc)}: {_message(exc)}", fix)
    status = details.get("modelLifecycle", {}).get("status", "ACTIVE")
    return CheckLine("titan model", OK if status == "ACTIVE" else WARNING, f"{model}: {status.title()}.")


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


def run_checks(settings: Settings, make_client: ClientFactory, bedrock_regions: list[str]) -> list[CheckLine]:
    """Every check that applies to ``settings``; stops after the credentials when they do not work."""
    lines = [check_credentials(make_client("sts"))]
    if lines[0].status == PROBLEM:
        return lines
    lines.append(check_region(settings.aws_region, bedrock_regions))
    if lines[-1].status == PROBLEM:
        return lines
    bedrock = make_client("bedrock")
    lines.extend(check_caption_model(bedrock, settings.caption_model, settings.aws_region))
    if settings.batch_bucket:
        lines.append(check_bucket(make_client("s3"), settings.batch_bucket, settings.aws_region))
    if settings.batch_role_arn:
        lines.append(check_role(make_client("iam"), settings.batch_role_arn))
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

    regions = service_regions("bedrock")
    return run_checks(settings, lambda service: make_client(service, settings.aws_region), regions)
