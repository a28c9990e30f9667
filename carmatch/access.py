"""Admin access: editing data and training need the password from CARMATCH_ADMIN_PASSWORD."""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from carmatch.config import Settings
from carmatch.errors import AccessDeniedError, BusyError

log = logging.getLogger(__name__)

READ_ONLY_NOTE = (
    "Editing is disabled: this instance has no admin password. Set CARMATCH_ADMIN_PASSWORD "
    "in the environment (or .env, or the Space's secrets) and restart to enable the Dataset "
    "and Training tabs."
)


def admin_enabled(settings: Settings) -> bool:
    """True when an admin password is configured."""
    return bool(settings.admin_password)


def check_admin(settings: Settings, password: str | None) -> None:
    """Raise AccessDeniedError unless ``password`` is the configured admin password."""
    if not admin_enabled(settings):
        raise AccessDeniedError(READ_ONLY_NOTE)
    if not password:
        raise AccessDeniedError("Locked: enter the admin password to edit. Nothing was changed.")
    given = password.encode()
    if not hmac.compare_digest(given, settings.admin_password.encode()):
        raise AccessDeniedError("Wrong admin password: nothing was changed.")


def is_admin(settings: Settings, password: str | None) -> bool:
    """True when ``password`` unlocks admin actions."""
    try:
        check_admin(settings, password)
    except AccessDeniedError:
        return False
    return True


class UnlockThrottle:
    """Per-client brute-force brake: after ``free`` wrong passwords in a row, each try waits twice as long.

    A client is refused (not slept on, so no worker is held) until its delay has passed; every
    failure is logged with the client's address; a right password clears the client's count.
    """

    def __init__(
        self, free: int = 5, base_s: float = 1.0, max_s: float = 900.0, clock: Callable[[], float] = time.monotonic
    ):
        self.free, self.base_s, self.max_s, self.clock = free, base_s, max_s, clock
        self._clients: OrderedDict[str, tuple[int, float]] = OrderedDict()  # address -> (failures, blocked until)
        self._lock = threading.Lock()

    def wait_left(self, client: str) -> float:
        """Seconds ``client`` must still wait before its next try (0 when it may try now)."""
        with self._lock:
            _failures, until = self._clients.get(client, (0, 0.0))
        return max(0.0, until - self.clock())

    def failed(self, client: str) -> float:
        """Record a wrong password from ``client``; returns the delay before its next try."""
        with self._lock:
            failures = self._clients.pop(client, (0, 0.0))[0] + 1
            over = failures - self.free
            delay = 0.0 if over < 0 else min(self.max_s, self.base_s * 2 ** min(over, 30))
            self._clients[client] = (failures, self.clock() + delay)
            while len(self._clients) > 10_000:  # bounded memory under many addresses
                self._clients.popitem(last=False)
        log.warning("Failed admin unlock from %s (%d in a row; next try in %.0f s)", client, failures, delay)
        return delay

    def succeeded(self, client: str) -> None:
        """A right password: forget ``client``'s failures."""
        with self._lock:
            self._clients.pop(client, None)


def check_unlock(settings: Settings, throttle: UnlockThrottle, password: str | None, client: str) -> None:
    """check_admin, refused while ``client`` must wait after repeated wrong passwords; failures are counted."""
    wait = throttle.wait_left(client)
    if wait > 0:
        log.warning("Admin unlock from %s refused: %.0f s left to wait", client, wait)
        raise AccessDeniedError(f"Too many wrong admin passwords: wait {wait:.0f} s before trying again.")
    try:
        check_admin(settings, password)
    except AccessDeniedError:
        if admin_enabled(settings) and password:
            throttle.failed(client)
        raise
    throttle.succeeded(client)


class RateLimit:
    """At most ``per_minute`` calls per client in any 60 seconds; BusyError (with the wait) beyond that."""

    def __init__(self, per_minute: int, what: str = "searches", clock: Callable[[], float] = time.monotonic):
        self.per_minute, self.what, self.clock = per_minute, what, clock
        self._calls: OrderedDict[str, deque[float]] = OrderedDict()  # address -> times of its recent calls
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        """Count a call from ``client``, or raise BusyError when it is over the limit (not counted)."""
        now = self.clock()
        with self._lock:
            calls = self._calls.pop(client, deque())
            while calls and calls[0] <= now - 60:
                calls.popleft()
            self._calls[client] = calls
            while len(self._calls) > 10_000:  # bounded memory under many addresses
                self._calls.popitem(last=False)
            if len(calls) >= self.per_minute:
                wait = calls[0] + 60 - now
                log.warning("Rate limit: %s from %s over %d a minute", self.what, client, self.per_minute)
                raise BusyError(f"Too many {self.what} from your address: try again in {wait:.0f} s.")
            calls.append(now)
