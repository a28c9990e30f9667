"""Admin unlock: wrong passwords from one client are slowed down exponentially and logged with its address."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from carmatch.access import RateLimit, UnlockThrottle, check_admin, client_key
from carmatch.config import Settings
from carmatch.errors import AccessDeniedError, BusyError
from carmatch.runtime import Runtime


class Clock:
    """A clock the test moves by hand (no sleeps)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def admin(settings: Settings) -> Settings:
    return settings.with_overrides(admin_password="s3cret")


def test_five_wrong_passwords_then_each_try_waits_twice_as_long(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    throttle, settings = UnlockThrottle(free=5, base_s=1.0, clock=clock), admin(settings)
    caplog.set_level(logging.WARNING, logger="carmatch.access")
    for _ in range(4):
        with pytest.raises(AccessDeniedError, match="Wrong admin password"):
            check_admin(settings, "guess", "203.0.113.7", throttle)
        assert throttle.wait_left("203.0.113.7") == 0
    delays = []
    for _ in range(3):
        with pytest.raises(AccessDeniedError, match="Wrong admin password"):
            check_admin(settings, "guess", "203.0.113.7", throttle)
        delays.append(throttle.wait_left("203.0.113.7"))
        with pytest.raises(AccessDeniedError, match="Too many wrong admin passwords"):
            check_admin(settings, "s3cret", "203.0.113.7", throttle)  # even the right one waits
        clock.now += delays[-1]
    assert delays == [1.0, 2.0, 4.0]
    check_admin(settings, "s3cret", "203.0.113.7", throttle)  # after the wait, the right password unlocks
    with pytest.raises(AccessDeniedError, match="Wrong admin password"):
        check_admin(settings, "guess", "203.0.113.7", throttle)
    assert throttle.wait_left("203.0.113.7") == 0  # success cleared the count: back to five free tries
    failures = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Wrong admin password from")]
    assert len(failures) == 8 and all("203.0.113.7" in line for line in failures)


def test_one_clients_failures_do_not_lock_out_another(settings: Settings) -> None:
    clock = Clock()
    throttle, settings = UnlockThrottle(free=1, clock=clock), admin(settings)
    with pytest.raises(AccessDeniedError):
        check_admin(settings, "guess", "203.0.113.7", throttle)
    assert throttle.wait_left("203.0.113.7") > 0
    check_admin(settings, "s3cret", "198.51.100.1", throttle)


def test_the_apps_unlock_row_uses_the_throttle_and_the_client_address(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    gr = pytest.importorskip("gradio")
    from carmatch.ui import common

    runtime = SimpleNamespace(settings=admin(settings))
    throttle = UnlockThrottle(free=1, clock=Clock())
    request = gr.Request(headers={"x-forwarded-for": "1.2.3.4, 203.0.113.7"}, client={"host": "10.0.0.1"})
    monkeypatch.setenv("SPACE_ID", "owner/space")
    monkeypatch.delenv("CARMATCH_TRUSTED_PROXIES", raising=False)
    assert common.client_address(request) == "10.0.0.1"  # a header is trusted only behind a configured proxy
    monkeypatch.setenv("CARMATCH_TRUSTED_PROXIES", "10.0.0.0/8")
    assert common.client_address(request) == "203.0.113.7"
    stored, note = common.guarded_unlock(runtime, throttle, "guess", "203.0.113.7")  # type: ignore[arg-type]
    assert stored == "" and "Wrong admin password" in note
    stored, note = common.guarded_unlock(runtime, throttle, "s3cret", "203.0.113.7")  # type: ignore[arg-type]
    assert stored == "" and "wait 1 s" in note


def test_a_spoofed_forwarded_header_from_an_untrusted_peer_is_ignored() -> None:
    assert client_key("127.0.0.1", "198.51.100.9", "") == "127.0.0.1"  # loopback cannot pick its own key
    assert client_key("127.0.0.1", "198.51.100.9", "10.0.0.0/8") == "127.0.0.1"
    assert client_key("10.1.2.3", "6.6.6.6, 203.0.113.7", "10.0.0.0/8") == "203.0.113.7"  # the proxy's hop
    assert client_key("10.1.2.3", "203.0.113.7, 10.9.9.9", "10.0.0.0/8") == "203.0.113.7"  # trusted hops skipped
    assert client_key("10.1.2.3", "x", "not-a-network") == "10.1.2.3"  # a bad setting trusts nothing


def test_the_retry_box_counts_on_the_same_brake_as_unlock(settings: Settings) -> None:
    from carmatch.access import PASSWORD_THROTTLE
    from carmatch.ui import server_status

    runtime = SimpleNamespace(settings=admin(settings), retry_model=lambda: None)
    client = "198.51.100.77"
    for _ in range(PASSWORD_THROTTLE.free):
        with pytest.raises(AccessDeniedError, match="Wrong admin password"):
            server_status.retry_model(runtime, "guess", client)  # type: ignore[arg-type]
    with pytest.raises(AccessDeniedError, match="Too many wrong admin passwords"):
        server_status.retry_model(runtime, "guess", client)  # type: ignore[arg-type]
    with pytest.raises(AccessDeniedError, match="Too many wrong admin passwords"):
        check_admin(admin(settings), "s3cret", client)  # the unlock waits too, even with the right password
    PASSWORD_THROTTLE.succeeded(client)


def test_searches_over_the_per_minute_limit_wait_for_the_window() -> None:
    clock = Clock()
    limit = RateLimit(3, "searches", clock=clock)
    for _ in range(3):
        limit.check("203.0.113.7")
    with pytest.raises(BusyError, match="Too many searches from your address: try again in 60 s"):
        limit.check("203.0.113.7")
    limit.check("198.51.100.1")  # another visitor is not held up
    clock.now += 60.5
    limit.check("203.0.113.7")


def test_the_search_api_applies_the_per_client_limit(runtime: Runtime, car_folder: Path) -> None:
    gr = pytest.importorskip("gradio")
    from carmatch.ui import search_tab

    runtime.settings = runtime.settings.with_overrides(search_per_minute=2)
    runtime.ingestor().ingest_folder(car_folder)
    from carmatch.access import RateLimit
    from carmatch.ui import agent_api

    searches = RateLimit(2)
    with gr.Blocks() as demo:
        agent_api.register(runtime, searches)
        search_tab.build(demo, runtime, searches)
    search = next(f.fn for f in demo.fns.values() if f.api_name == "search")
    search_cars = next(f.fn for f in demo.fns.values() if f.api_name == "search_cars")
    request = gr.Request(client={"host": "203.0.113.7"})
    query = ("a red car", None, 2, 0.5, "any", "any", "any", "any", "any")
    for _ in range(2):
        assert len(search(*query, request=request)[1]) == 2
    with pytest.raises(gr.Error, match="Too many searches"):
        search(*query, request=request)
    with pytest.raises(gr.Error, match="Too many searches"):  # the API and MCP tool share the visitor's count
        search_cars("a red car", request=request)
