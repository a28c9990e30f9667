"""The one AWS error policy botocore lacks: which errors fail every call alike, so a run stops at once.

Throttling, 5xx and dropped connections are retried by botocore (adaptive mode for bulk captioning), configured once
in :func:`carmatch.aws.make_client`; nothing here retries or sleeps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

# Errors that fail every image alike: stop the run at once.
FATAL_CODES = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "ResourceNotFoundException",
        "ServiceQuotaExceededException",
    }
)

Sleep = Callable[[float], None]  # how batch polling pauses (tests pass a recorder)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError, else the exception's class name."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "")) or type(exc).__name__
    return type(exc).__name__


def is_fatal(exc: BaseException) -> bool:
    """True for errors that would fail every image alike (credentials, permissions, model id, region)."""
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError, PartialCredentialsError

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError, NoRegionError)):
        return True
    return isinstance(exc, ClientError) and error_code(exc) in FATAL_CODES
