"""Per-visitor upload bounds in front of Gradio's upload route: rate, hourly total, photo size; admins exempt."""

from __future__ import annotations

from typing import Any

import pytest

from carmatch.access import UnlockThrottle
from carmatch.config import Settings
from carmatch.ui.upload_limits import UploadBudget, UploadLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client_for(settings: Settings, clock: Clock, throttle: UnlockThrottle) -> Any:
    pytest.importorskip("httpx")
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    stored: list[int] = []

    async def upload(request: Any) -> PlainTextResponse:
        stored.append(len(await request.body()))
        return PlainTextResponse("stored")

    app = Starlette(routes=[Route("/gradio_api/upload", upload, methods=["POST"])])
    budget = UploadBudget(settings.uploads_per_minute, settings.upload_bytes_per_hour, clock=clock)
    wrapped = UploadLimits(app, settings, budget, throttle)
    client = TestClient(wrapped)
    client.stored = stored  # type: ignore[attr-defined]
    return client


def test_a_visitor_is_held_to_its_upload_rate_total_and_photo_size(settings: Settings) -> None:
    settings = settings.with_overrides(uploads_per_minute=3, upload_bytes_per_hour=10_000, max_query_upload_bytes=4000)
    clock, throttle = Clock(), UnlockThrottle()
    client = client_for(settings, clock, throttle)
    for _ in range(3):
        assert client.post("/gradio_api/upload", content=b"x" * 1000).status_code == 200
    refused = client.post("/gradio_api/upload", content=b"x" * 1000)
    assert refused.status_code == 429 and "Too many uploads from your address" in refused.json()["error"]
    clock.now += 61
    big = client.post("/gradio_api/upload", content=b"x" * 5000)
    assert big.json()["error"] == "A photo to search by may be at most 4,000 bytes (got 5,000 bytes)."
    assert big.status_code == 413
    for _ in range(3):
        assert client.post("/gradio_api/upload", content=b"x" * 2000).status_code == 200
        clock.now += 61
    over = client.post("/gradio_api/upload", content=b"x" * 2000)  # 9,000 bytes this hour already
    assert over.status_code == 429 and "in the last hour" in over.json()["error"]
    assert client.stored == [1000] * 3 + [2000] * 3  # refused uploads never reached the route
    clock.now += 3600
    assert client.post("/gradio_api/upload", content=b"x" * 2000).status_code == 200


def test_a_spoofed_forwarded_header_does_not_reset_the_count(settings: Settings) -> None:
    settings = settings.with_overrides(uploads_per_minute=2)
    client = client_for(settings, Clock(), UnlockThrottle())
    spoofed = [
        client.post("/gradio_api/upload", content=b"x", headers={"x-forwarded-for": f"1.1.1.{n}"}) for n in range(3)
    ]
    assert [r.status_code for r in spoofed] == [200, 200, 429]


def test_an_unlocked_admin_may_upload_images_to_ingest_beyond_the_visitor_bounds(settings: Settings) -> None:
    settings = settings.with_overrides(uploads_per_minute=1, max_query_upload_bytes=10)
    throttle = UnlockThrottle()
    client = client_for(settings, Clock(), throttle)
    throttle.succeeded("testclient")  # the test client's address unlocked editing
    for _ in range(3):
        assert client.post("/gradio_api/upload", content=b"x" * 500).status_code == 200


def test_the_app_launches_with_the_upload_bounds(settings: Settings) -> None:
    import app

    kwargs = app.launch_options(settings)["app_kwargs"]
    assert UploadLimits in [m.cls for m in kwargs["middleware"]]  # type: ignore[index]
