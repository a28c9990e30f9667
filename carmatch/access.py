"""Admin access: editing data and training need the password from CARMATCH_ADMIN_PASSWORD."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from carmatch.config import Settings
from carmatch.errors import AccessDeniedError, BusyError, ConfigError

log = logging.getLogger(__name__)

UNKNOWN_CLIENT = "unknown"  # the key of checks that come with no client address

READ_ONLY_NOTE = (
    "Editing is disabled: this instance has no admin password. Set CARMATCH_ADMIN_PASSWORD "
    "in the environment (or .env, or the Space's secrets) and restart to enable the Dataset "
    "and Training tabs."
)


def admin_enabled(settings: Settings) -> bool:
    """True when an admin password is configured."""
    return bool(settings.admin_password)


def check_admin(
    settings: Settings, password: str | None, client: str = UNKNOWN_CLIENT, throttle: UnlockThrottle | None = None
) -> None:
    """The one admin password check (unlock, retry, every write): rate-limited per ``client``.

    Raises AccessDeniedError unless ``password`` is the configured admin password. After repeated wrong
    passwords from one client each try must wait (even the right password is refused meanwhile); every
    failure is counted on the process-wide :data:`PASSWORD_THROTTLE` (or ``throttle``), whichever box it came from.
    """
    gate = throttle if throttle is not None else PASSWORD_THROTTLE
    if not admin_enabled(settings):
        raise AccessDeniedError(READ_ONLY_NOTE)
    if not password:
        raise AccessDeniedError("Locked: enter the admin password to edit. Nothing was changed.")
    wait = gate.wait_left(client)
    if wait > 0:
        log.warning("Admin password from %s refused: %.0f s left to wait", client, wait)
        raise AccessDeniedError(f"Too many wrong admin passwords: wait {wait:.0f} s before trying again.")
    if not hmac.compare_digest(password.encode(), settings.admin_password.encode()):
        gate.failed(client)
        raise AccessDeniedError("Wrong admin password: nothing was changed.")
    gate.succeeded(client)


def is_admin(settings: Settings, password: str | None, client: str = UNKNOWN_CLIENT) -> bool:
    """True when ``password`` unlocks admin actions (the same rate-limited check as :func:`check_admin`)."""
    try:
        check_admin(settings, password, client)
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
        self._unlocked: OrderedDict[str, float] = OrderedDict()  # address -> when it last gave the right password
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
        log.warning("Wrong admin password from %s (%d in a row; next try in %.0f s)", client, failures, delay)
        return delay

    def succeeded(self, client: str) -> None:
        """A right password: forget ``client``'s failures and remember it unlocked (see :meth:`unlocked_recently`)."""
        with self._lock:
            self._clients.pop(client, None)
            if client != UNKNOWN_CLIENT:
                self._unlocked.pop(client, None)
                self._unlocked[client] = self.clock()
                while len(self._unlocked) > 1_000:
                    self._unlocked.popitem(last=False)

    def reset(self) -> None:
        """Forget every client's failures and unlocks."""
        with self._lock:
            self._clients.clear()
            self._unlocked.clear()

    def unlocked_recently(self, client: str, within_s: float = 12 * 3600) -> bool:
        """True when ``client`` gave the right admin password within ``within_s`` seconds (admin upload sizes)."""
        with self._lock:
            when = self._unlocked.get(client)
        return when is not None and self.clock() - when <= within_s


PASSWORD_THROTTLE = UnlockThrottle()  # one per process: every admin password box counts here


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


def parse_proxies(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """CARMATCH_TRUSTED_PROXIES (addresses or networks, comma-separated) as networks; ConfigError when malformed."""
    networks = []
    for item in value.replace(" ", ",").split(","):
        if not item.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError as exc:
            raise ConfigError(f"CARMATCH_TRUSTED_PROXIES: {item.strip()!r} is not an address or network") from exc
    return tuple(networks)


def _is_in(address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


_IGNORED_PEERS: set[str] = set()  # peers whose X-Forwarded-For was ignored (logged once each)


def client_key(peer: str | None, forwarded: str, trusted: str) -> str:
    """The client a request counts for: the peer, or (behind a trusted proxy) the first untrusted X-Forwarded-For hop.

    The header is read only when the peer is one of the CARMATCH_TRUSTED_PROXIES, from its right end (the hop the
    proxy appended), so a visitor cannot choose its own key by sending the header.
    """
    peer = (peer or "").strip() or UNKNOWN_CLIENT
    try:
        networks = parse_proxies(trusted) if trusted.strip() else ()
    except ConfigError as exc:
        log.warning("%s: no proxy is trusted", exc)
        networks = ()
    if not forwarded.strip():
        return peer
    if not _is_in(peer, networks):
        if peer not in _IGNORED_PEERS and len(_IGNORED_PEERS) < 100:  # once per peer: the address to configure
            _IGNORED_PEERS.add(peer)
            log.info("X-Forwarded-For from %s ignored: add it to CARMATCH_TRUSTED_PROXIES if it is your proxy", peer)
        return peer
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        if not _is_in(hop, networks):
            return hop
    return peer
