"""AWS plumbing shared by captioning, SageMaker training and Titan: clients, S3 URIs and clear errors.

Clients are created here (and only here) but always passed into the functions that use them, so
tests hand in clients wrapped by ``botocore.stub.Stubber``. Every ``s3://`` URI, bucket name and
key prefix a user types goes through the parser below.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from carmatch.errors import AwsError, InvalidInputError

log = logging.getLogger(__name__)

CREDENTIALS_HELP = (
    "AWS credentials were not found. Give carmatch credentials in one of the usual ways: "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN for temporary ones) "
    "in the environment or .env, AWS_PROFILE naming a profile in ~/.aws/credentials, or an "
    "instance/role profile when running on AWS. See docs/aws-setup.md."
)


S3_SCHEME = "s3://"
BUCKET_NAME_MIN_CHARS = 3
BUCKET_NAME_MAX_CHARS = 63
BUCKET_NAME_RULES = (
    f"{BUCKET_NAME_MIN_CHARS}-{BUCKET_NAME_MAX_CHARS} lowercase letters, digits, dots and hyphens, "
    "starting and ending with a letter or digit"
)
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.\-]*[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d{1,3}(\.\d{1,3}){3}")

# What an S3UriError says went wrong (its ``kind``).
S3_EMPTY = "empty"
S3_NOT_S3 = "not-s3"
S3_BAD_BUCKET = "bucket"
S3_NO_KEY = "no-key"
S3_HAS_FOLDER = "folder"


class S3UriError(InvalidInputError):
    """An S3 URI, bucket name or prefix that cannot be used; ``kind`` says which rule it broke.

    Like every library error it carries ``field`` (the input's name), ``value`` (as given) and the
    reason, so the CLI names the field by its flag and the app by its on-screen label.
    """

    def __init__(self, kind: str, *, field: str, value: str, reason: str, label: str = "", hint: str = ""):
        self.kind = kind
        super().__init__(field=field, value=value, reason=reason, label=label, hint=hint)


class S3Uri(NamedTuple):
    """An ``s3://bucket/key`` location, split; unpacks as ``bucket, key``."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.key}"


def check_bucket_name(name: str, *, field: str = "bucket", label: str = "S3 bucket", value: str | None = None) -> str:
    """``name`` when it follows S3's bucket naming rules; S3UriError (kind ``bucket``) otherwise.

    ``value`` is the whole input when the name came out of a URI, so the error shows what was typed.
    """
    valid = (
        BUCKET_NAME_MIN_CHARS <= len(name) <= BUCKET_NAME_MAX_CHARS
        and _BUCKET_NAME.fullmatch(name) is not None
        and ".." not in name
        and _IP_ADDRESS.fullmatch(name) is None
    )
    if valid:
        return name
    if value is None:  # the input is the bucket name itself
        reason = f"is not a valid S3 bucket name ({BUCKET_NAME_RULES}; got {name!r})"
    else:  # the input is a URI holding it
        reason = f"names bucket {name!r}, which breaks S3's naming rules ({BUCKET_NAME_RULES})"
    raise S3UriError(S3_BAD_BUCKET, field=field, label=label, value=name if value is None else value, reason=reason)


def normalise_bucket(text: str | None, *, field: str = "bucket", label: str = "S3 bucket", hint: str = "") -> str:
    """The bucket name in ``my-bucket`` or `` s3://my-bucket/ ``; S3UriError when empty, a path or misnamed."""
    raw = text or ""
    name = raw.strip().removeprefix(S3_SCHEME).strip("/")
    if not name:
        raise S3UriError(S3_EMPTY, field=field, label=label, value=raw, reason="is missing", hint=hint)
    if "/" in name:
        raise S3UriError(
            S3_HAS_FOLDER,
            field=field,
            label=label,
            value=raw,
            reason=f"must be the bucket name only, with the folder given as the prefix (got {raw.strip()!r})",
        )
    return check_bucket_name(name, field=field, label=label)


def normalise_prefix(text: str | None) -> str:
    """A key prefix without surrounding whitespace or slashes (``" /a/b/ "`` -> ``"a/b"``); may be empty."""
    return (text or "").strip().strip("/")


def parse_s3_uri(
    uri: str | None,
    *,
    require_key: bool = True,
    field: str = "s3_uri",
    label: str = "S3 URI",
    noun: str = "an S3 URI",
    example: str = "s3://my-bucket/path/file",
) -> S3Uri:
    """Split ``s3://bucket/key`` (whitespace around it ignored) into (bucket, key); S3UriError when unusable.

    With ``require_key`` the key must name an object (not empty, not ending in ``/``). ``field`` and
    ``label`` name the input in the error; ``noun`` and ``example`` say what was expected.
    """
    raw = uri or ""
    text = raw.strip()

    def refuse(kind: str, reason: str) -> S3UriError:
        return S3UriError(kind, field=field, label=label, value=raw, reason=reason)

    if not text:
        raise refuse(S3_EMPTY, f"is missing: give {noun} like {example}")
    bucket, _, key = text.removeprefix(S3_SCHEME).partition("/")
    if not text.startswith(S3_SCHEME) or not bucket:
        raise refuse(S3_NOT_S3, f"is not {noun} like {example} (got {text!r})")
    check_bucket_name(bucket, field=field, label=label, value=raw)
    if require_key and (not key or key.endswith("/")):
        raise refuse(S3_NO_KEY, f"names a folder, not a file: give {noun} like {example} (got {text!r})")
    return S3Uri(bucket, key)


def s3_prefix_uri(
    text: str | None,
    *,
    field: str = "s3_prefix",
    label: str = "S3 prefix",
    noun: str = "an S3 prefix",
    example: str = "s3://my-bucket/path/",
) -> str:
    """``s3://bucket/prefix/`` with exactly one trailing slash (``s3://bucket/`` for a whole bucket)."""
    bucket, key = parse_s3_uri(text, require_key=False, field=field, label=label, noun=noun, example=example)
    key = key.rstrip("/")
    return f"{S3_SCHEME}{bucket}/{key}/" if key else f"{S3_SCHEME}{bucket}/"


# Retries live here and only here. Both of botocore's modes retry throttling, 5xx and dropped connections
# with exponential backoff and jitter. "standard" is for callers that share nothing but the account: the
# app (visitors, admins) and interactive commands. "adaptive" adds client-side rate limiting, which slows
# every thread sharing a client down when AWS throttles: AWS recommends it only for a single-tenant bulk
# job, so carmatch uses it for bulk captioning and embedding only (``bulk=True``). carmatch adds only what
# botocore has not: stopping a whole run on an error that fails every call alike (captions.retry.is_fatal).
RETRY_MODE = "standard"
BULK_RETRY_MODE = "adaptive"
DEFAULT_ATTEMPTS = 4  # per call, first try included
CALL_ATTEMPTS = 8  # per call for many small concurrent calls (live captions, Titan embeddings)
READ_TIMEOUT_SECONDS = 300


def retry_settings(total_attempts: int = DEFAULT_ATTEMPTS, bulk: bool = False) -> dict[str, Any]:
    """The ``retries`` option every carmatch client is made with (adaptive only for ``bulk`` work)."""
    return {"total_max_attempts": total_attempts, "mode": BULK_RETRY_MODE if bulk else RETRY_MODE}


def make_client(
    service: str, region: str, total_attempts: int = DEFAULT_ATTEMPTS, *, bulk: bool = False, **kwargs: Any
) -> Any:
    """The one factory of boto3 clients: ``service`` in ``region``, each call tried up to ``total_attempts``
    times (``bulk``: a single-tenant bulk job, whose threads share adaptive rate limiting)."""
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=region,
        retries=retry_settings(total_attempts, bulk),  # type: ignore[arg-type]
        read_timeout=READ_TIMEOUT_SECONDS,
    )
    return boto3.client(service, config=config, **kwargs)


UPLOAD_CONCURRENCY = 16  # files in flight at once through the one TransferManager of an upload


class Upload(NamedTuple):
    """One local file to put at ``s3://bucket/key`` (``extra_args``: ContentType, Metadata, ...)."""

    path: str
    bucket: str
    key: str
    extra_args: dict[str, Any] | None = None


def upload_files(s3: Any, uploads: Sequence[Upload], progress: Callable[[int, int, str], None] | None = None) -> None:
    """Send ``uploads`` through one s3transfer TransferManager, UPLOAD_CONCURRENCY files at a time, each in parts.

    Raises the first failed upload's own error (botocore or s3transfer) after the others settled.
    """
    from boto3.s3.transfer import TransferConfig, create_transfer_manager

    with create_transfer_manager(s3, TransferConfig(max_concurrency=UPLOAD_CONCURRENCY)) as manager:
        futures = [manager.upload(u.path, u.bucket, u.key, extra_args=u.extra_args) for u in uploads]
        for n, future in enumerate(futures, 1):
            future.result()
            if progress:
                progress(n, len(futures), "uploading")


def service_regions(service: str, partition: str = "aws") -> list[str]:
    """The regions botocore's endpoint data lists for ``service`` in ``partition`` (no call to AWS)."""
    import boto3

    return list(boto3.Session().get_available_regions(service, partition_name=partition))


# Bedrock's automatic model access (user guide, "Request access to models", read 2026-12-08): the first call to a
# third-party model subscribes the account through AWS Marketplace, which needs three things. Each has its own
# AccessDeniedException message; ACCESS_STEPS maps words of that message to the step that is missing.
MARKETPLACE_ACTIONS = ("aws-marketplace:Subscribe", "aws-marketplace:Unsubscribe", "aws-marketplace:ViewSubscriptions")
STEP_MARKETPLACE = (
    "allow the AWS Marketplace actions "
    + ", ".join(MARKETPLACE_ACTIONS)
    + " in the caller's IAM policy (docs/aws-setup.md, 'IAM permissions'), then wait up to 15 minutes"
)
STEP_USE_CASE = (
    "submit Anthropic's one-time use-case (first-use) form: open any Claude model in the Bedrock console's "
    "Model catalog, once per account or organization"
)
STEP_PAYMENT = "add a valid payment method to the AWS account (Billing console), needed for Marketplace subscriptions"
ACCESS_STEPS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("aws-marketplace",), STEP_MARKETPLACE),
    (("use case", "use-case", "first-use", "first time use"), STEP_USE_CASE),
    (("payment",), STEP_PAYMENT),
)


def missing_access_step(message: str) -> str | None:
    """The model-access step Bedrock's error ``message`` says is missing; None when it names none."""
    text = message.lower()
    for words, step in ACCESS_STEPS:
        if any(word in text for word in words):
            return step
    return None


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
        if code in ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation", "403"):  # 403: a HeadObject
            step = missing_access_step(message)
            if step is not None:
                return AwsError(f"Cannot {action}: Bedrock model access is not set up ({message}). Fix: {step}.")
            return AwsError(
                f"Cannot {action}: access denied ({message}). Check the IAM permissions in docs/aws-setup.md; "
                "`carmatch aws check` says which step of Bedrock model access is missing."
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
