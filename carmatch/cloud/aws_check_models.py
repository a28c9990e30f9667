"""``aws check``'s Bedrock lines: the region, the caption model (profile, lifecycle, batch, access) and Titan.

Everything is read from Bedrock itself (``GetInferenceProfile``, ``GetFoundationModel``, ``ListFoundationModels``,
``GetFoundationModelAvailability``, ``GetUseCaseForModelAccess``), from Service Quotas and from IAM's policy
simulator, so a model that turns Legacy or an account that lacks a step of automatic model access is reported
before the first caption fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from carmatch.aws import MARKETPLACE_ACTIONS, STEP_MARKETPLACE, STEP_PAYMENT, STEP_USE_CASE
from carmatch.bedrock_models import (
    DEFAULT_CAPTION_MODEL,
    GLOBAL_PROFILE,
    base_model,
    caption_model_for_region,
    profile_choices,
    profile_geography,
    region_geographies,
    region_partition,
)
from carmatch.cloud.check_lines import OK, PROBLEM, WARNING, CheckLine, error_code, error_message

BEDROCK_MODEL_PREFIX = "bedrock/"  # CARMATCH_MODEL=bedrock/<Titan model id or ARN>
TITAN_FOUNDATION_MODEL = "amazon.titan-embed-image-v1"
LIFECYCLE_HELP = "https://docs.aws.amazon.com/bedrock/latest/userguide/model-lifecycle.html"


def check_region(region: str, available: list[str]) -> CheckLine:
    """Whether Bedrock runs in ``region`` and which inference-profile geographies it can call."""
    if region not in available:
        return CheckLine(
            "region", PROBLEM, f"{region} has no Amazon Bedrock endpoint.", "Set AWS_REGION to e.g. us-east-1."
        )
    geographies = list(region_geographies(region))
    if region_partition(region) == "aws":
        geographies.append(GLOBAL_PROFILE)
    where = ", ".join(f"{g}." for g in geographies)
    return CheckLine("region", OK, f"{region} ({region_partition(region)} partition; inference profiles: {where}).")


def _profile_mismatch(model: str, region: str) -> CheckLine | None:
    """A problem line when ``model`` is a profile ``region`` cannot call."""
    geography = profile_geography(model)
    choices = profile_choices(base_model(model), region)
    if geography is None or geography in choices or not choices:
        return None
    return CheckLine(
        "caption model",
        PROBLEM,
        f"{model} is a {geography}. inference profile, which cannot be called from {region}.",
        f"Set CARMATCH_CAPTION_MODEL={caption_model_for_region(model, region)}.",
    )


def newest_active_claude(bedrock: Any, family: str = "sonnet") -> str | None:
    """The newest Active Claude ``family`` model Bedrock lists here (``ListFoundationModels``); None when none."""
    summaries = bedrock.list_foundation_models(byProvider="Anthropic").get("modelSummaries", [])
    ids = [
        s["modelId"]
        for s in summaries
        if f"claude-{family}" in s["modelId"] and s.get("modelLifecycle", {}).get("status") == "ACTIVE"
    ]
    return max(ids, default=None)


def lifecycle_line(bedrock: Any, details: dict[str, Any], model: str, region: str) -> CheckLine:
    """OK for an Active model; a warning naming the replacement (the default, else the newest Active) otherwise."""
    lifecycle = details.get("modelLifecycle", {})
    status = lifecycle.get("status", "ACTIVE")
    kinds = ", ".join(details.get("inferenceTypesSupported", [])) or "?"
    if status == "ACTIVE":
        return CheckLine("caption model", OK, f"{model}: Active (inference: {kinds}).")
    end = lifecycle.get("endOfLifeTime")
    when = f", end of life {end:%Y-%m-%d}" if end else ""
    replacement = caption_model_for_region(DEFAULT_CAPTION_MODEL, region)
    if base_model(replacement) == base_model(model):  # carmatch's own default turned Legacy: ask Bedrock
        newest = newest_active_claude(bedrock)
        choices = profile_choices(newest, region) if newest else ()
        replacement = f"{choices[0]}.{newest}" if newest and choices else (newest or "")
    fix = f"Set CARMATCH_CAPTION_MODEL={replacement}." if replacement else f"See {LIFECYCLE_HELP}."
    return CheckLine("caption model", WARNING, f"{model} is {status.title()} on Bedrock{when}.", fix)


def check_batch_support(quotas: Any, model_name: str, region: str) -> CheckLine:
    """Whether Service Quotas lists batch-inference quotas for ``model_name`` here (Bedrock offers batch per model)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        names = [
            q["QuotaName"]
            for page in quotas.get_paginator("list_service_quotas").paginate(ServiceCode="bedrock")
            for q in page.get("Quotas", [])
        ]
    except (BotoCoreError, ClientError) as exc:
        return CheckLine(
            "batch inference",
            WARNING,
            f"could not read Bedrock's quotas ({error_code(exc)}).",
            "Grant servicequotas:ListServiceQuotas to check batch support.",
        )
    batch = [n for n in names if "batch" in n.lower() and model_name.lower() in n.lower()]
    if not batch:
        return CheckLine(
            "batch inference",
            WARNING,
            f"Bedrock lists no batch-inference quota for {model_name} in {region}: batch jobs may not be offered.",
            "Use caption live here, or a region where Bedrock offers batch inference for this model.",
        )
    return CheckLine("batch inference", OK, f"{len(batch)} batch quota(s) for {model_name} in {region}.")


def check_caption_model(
    bedrock: Any, model: str, region: str, quotas: Callable[[], Any] | None = None
) -> list[CheckLine]:
    """The caption model: its profile geography, that it exists here, its lifecycle, batch support and access.

    ``quotas`` makes a Service Quotas client when the batch line is wanted (only once the model is found).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    mismatch = _profile_mismatch(model, region)
    if mismatch is not None:
        return [mismatch]
    base = base_model(model)
    lines: list[CheckLine] = []
    try:
        if base != model:
            profile = bedrock.get_inference_profile(inferenceProfileIdentifier=model)
            regions = sorted({m["modelArn"].split(":")[3] for m in profile.get("models", [])})
            routed = f"routes to {', '.join(regions)}" if regions else "routes to ?"
            lines.append(CheckLine("inference profile", OK, f"{model} {routed}."))
        details = bedrock.get_foundation_model(modelIdentifier=base)["modelDetails"]
        lines.append(lifecycle_line(bedrock, details, model, region))
        if quotas is not None:
            lines.append(check_batch_support(quotas(), details.get("modelName") or base, region))
        lines.append(access_line(bedrock.get_foundation_model_availability(modelId=base), base))
        if base.startswith("anthropic."):
            lines.append(use_case_line(bedrock))
    except (BotoCoreError, ClientError) as exc:
        fix = (
            "Check the model id against Bedrock's model list for this region, and the IAM policy in docs/aws-setup.md."
        )
        if error_code(exc) in ("ResourceNotFoundException", "ValidationException"):
            example = caption_model_for_region(DEFAULT_CAPTION_MODEL, region)
            fix = f"Use a Claude model Bedrock offers in {region}, e.g. {example}."
        lines.append(CheckLine("caption model", PROBLEM, f"{model}: {error_code(exc)}: {error_message(exc)}", fix))
    return lines


def access_line(availability: dict[str, Any], model: str) -> CheckLine:
    """Whether this account may invoke ``model`` now, and what automatic model access still needs if not."""
    authorized = availability.get("authorizationStatus") == "AUTHORIZED"
    agreement = availability.get("agreementAvailability", {}).get("status")
    entitled = availability.get("entitlementAvailability") == "AVAILABLE"
    if availability.get("regionAvailability") == "NOT_AVAILABLE":
        return CheckLine("model access", PROBLEM, f"{model} is not offered in this region.", "Use another AWS_REGION.")
    if authorized and agreement == "AVAILABLE" and entitled:
        return CheckLine("model access", OK, f"{model} may be invoked by this account (subscribed).")
    state = f"authorization {availability.get('authorizationStatus')}, agreement {agreement}, entitlement "
    state += str(availability.get("entitlementAvailability"))
    if not authorized:
        return CheckLine("model access", PROBLEM, f"{model}: {state}.", "An IAM policy or SCP denies this model.")
    if agreement == "ERROR":
        return CheckLine("model access", PROBLEM, f"{model}: {state}.", f"The subscription failed: {STEP_PAYMENT}.")
    return CheckLine(
        "model access",
        WARNING,
        f"{model}: {state}: not subscribed yet; Bedrock subscribes on the first call when the steps below are met.",
        f"Check the marketplace and use-case lines below; {STEP_PAYMENT}.",
    )


def use_case_line(bedrock: Any) -> CheckLine:
    """Whether Anthropic's one-time use-case form was submitted for this account (``GetUseCaseForModelAccess``)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        bedrock.get_use_case_for_model_access()
    except (BotoCoreError, ClientError) as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return CheckLine(
                "anthropic use case", PROBLEM, "the first-use form was never submitted.", STEP_USE_CASE + "."
            )
        return CheckLine(
            "anthropic use case",
            WARNING,
            f"could not read it ({error_code(exc)}).",
            "Grant bedrock:GetUseCaseForModelAccess to check it.",
        )
    return CheckLine("anthropic use case", OK, "the first-use form is on file.")


def caller_policy_arn(caller_arn: str) -> str | None:
    """The IAM user or role ARN behind an STS caller ARN (an assumed role's session -> the role); None for root."""
    if caller_arn.endswith(":root"):
        return None
    if ":assumed-role/" in caller_arn:
        head, _, rest = caller_arn.partition(":assumed-role/")
        return head.replace(":sts:", ":iam:") + ":role/" + rest.split("/")[0]
    return caller_arn


def check_marketplace_permissions(iam: Any, caller_arn: str) -> CheckLine:
    """That the caller may subscribe to a model through AWS Marketplace (``iam:SimulatePrincipalPolicy``)."""
    from botocore.exceptions import BotoCoreError, ClientError

    source = caller_policy_arn(caller_arn)
    if source is None:
        return CheckLine("marketplace", OK, "the root user may subscribe (use an IAM identity for carmatch).")
    try:
        results = iam.simulate_principal_policy(PolicySourceArn=source, ActionNames=list(MARKETPLACE_ACTIONS))
    except (BotoCoreError, ClientError) as exc:
        return CheckLine(
            "marketplace",
            WARNING,
            f"could not simulate {source}'s policy ({error_code(exc)}).",
            f"Grant iam:SimulatePrincipalPolicy to check it, or make sure to {STEP_MARKETPLACE}.",
        )
    denied = [r["EvalActionName"] for r in results.get("EvaluationResults", []) if r["EvalDecision"] != "allowed"]
    if denied:
        return CheckLine("marketplace", PROBLEM, f"{source} may not {', '.join(denied)}.", STEP_MARKETPLACE + ".")
    return CheckLine("marketplace", OK, f"{source} may subscribe to models through AWS Marketplace.")


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
        return CheckLine("titan model", PROBLEM, f"{model}: {error_code(exc)}: {error_message(exc)}", fix)
    status = details.get("modelLifecycle", {}).get("status", "ACTIVE")
    return CheckLine("titan model", OK if status == "ACTIVE" else WARNING, f"{model}: {status.title()}.")
