"""When to retry an AWS call and how long to pause: throttling and 5xx again, account problems never."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6  # per call, throttling and 5xx only
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0

RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "ServiceUnavailableException",
        "InternalServerException",
        "InternalFailure",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "RequestTimeout",
        "SlowDown",
    }
)
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

T = TypeVar("T")
Sleep = Callable[[float], None]


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError, else the exception's class name."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "")) or type(exc).__name__
    return type(exc).__name__


def is_retryable(exc: BaseException) -> bool:
    """True for throttling, 5xx and dropped connections: worth trying again after a pause."""
    from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

    if isinstance(exc, (ConnectionClosedError, ReadTimeoutError, EndpointConnectionError)):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
        return error_code(exc) in RETRYABLE_CODES or status == 429 or status >= 500
    return False


def is_fatal(exc: BaseException) -> bool:
    """True for errors that would fail every image alike (credentials, permissions, model id, region)."""
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError, PartialCredentialsError

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError, NoRegionError)):
        return True
    return isinstance(exc, ClientError) and error_code(exc) in FATAL_CODES


def backoff_seconds(
    attempt: int, rng: random.Random, base: float = BACKOFF_BASE_SECONDS, cap: float = BACKOFF_MAX_SECONDS
) -> float:
    """Pause before retry ``attempt`` (1-based): exponential, capped, with jitter in its upper half."""
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def call_with_retries(
    fn: Callable[[], T],
    *,
    sleep: Sleep = time.sleep,
    rng: random.Random | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    what: str = "call AWS",
) -> T:
    """Call ``fn``, retrying throttling and 5xx errors with exponential backoff and jitter."""
    rng = rng or random.Random()
    attempt = 1
    while True:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified just below, re-raised when not retryable
            if not is_retryable(exc) or attempt >= max_attempts:
                raise
            delay = backoff_seconds(attempt, rng)
            log.info("%s: %s, retry %d/%d in %.1fs", what, error_code(exc), attempt, max_attempts - 1, delay)
            sleep(delay)
            attempt += 1
