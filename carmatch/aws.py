"""AWS plumbing shared by captioning, SageMaker training and Titan: clients and clear errors.

Clients are created here but always passed into the functions that use them, so tests hand in
clients wrapped by ``botocore.stub.Stubber``.
"""

from __future__ import annotations

import logging
from typing import Any

from carmatch.errors import AwsError

log = logging.getLogger(__name__)

CREDENTIALS_HELP = (
    "AWS credentials were not found. Give carmatch credentials in one of the usual ways: "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN for temporary ones) "
    "in the environment or .env, AWS_PROFILE naming a profile in ~/.aws/credentials, or an "
    "instance/role profile when running on AWS. See the README's 'AWS set-up' section."
)


def make_client(service: str, region: str, total_attempts: int = 4, **kwargs: Any) -> Any:
    """A boto3 client for ``service`` in ``region``, trying each call at most ``total_attempts`` times."""
    import boto3
    from botocore.config import Config

    retries = {"total_max_attempts": total_attempts, "mode": "adaptive"}
    config = Config(region_name=region, retries=retries, read_timeout=300)  # type: ignore[arg-type]
    return boto3.client(service, config=config, **kwargs)


def has_credentials() -> bool:
    """True when boto3 can find AWS credentials (without calling AWS)."""
    import boto3

    return boto3.Session().get_credentials() is not None


def explain_aws_error(exc: BaseException, action: str, region: str | None = None) -> AwsError:
    """Turn a botocore exception into an AwsError whose message says what to do."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return AwsError(f"Cannot {action}: {CREDENTIALS_HELP}")
    if isinstance(exc, NoRegionError):
        return AwsError(f"Cannot {action}: no AWS region set. Set AWS_REGION (e.g. us-east-1).")
    if isinstance(exc, EndpointConnectionError):
        return AwsError(f"Cannot {action}: could not reach AWS in region {region or '?'} ({exc}).")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code in ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation"):
            return AwsError(
                f"Cannot {action}: access denied ({message}). Check the IAM permissions in the README "
                "and, for Bedrock, that model access is granted for this model in this region."
            )
        if code in ("UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException"):
            return AwsError(f"Cannot {action}: the AWS credentials were rejected ({message}). Refresh them.")
        if code == "ResourceNotFoundException":
            return AwsError(
                f"Cannot {action}: not found ({message}). Check the model id and that it is offered "
                f"in region {region or '?'} (AWS_REGION)."
            )
        if code == "ValidationException":
            return AwsError(f"Cannot {action}: AWS refused the request ({message}).")
        if code in ("ServiceQuotaExceededException", "ThrottlingException", "TooManyRequestsException"):
            return AwsError(f"Cannot {action}: AWS quota or rate limit reached ({message}). Try again later.")
        return AwsError(f"Cannot {action}: {code or 'AWS error'}: {message}")
    return AwsError(f"Cannot {action}: {exc}")
