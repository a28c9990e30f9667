"""The app over HTTP: the search endpoint called as a Gradio event, and importing app."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from carmatch.runtime import Runtime
from tests.conftest import UPLOAD_LIMIT


def test_search_is_callable_as_a_gradio_api(served: tuple[Runtime, str]) -> None:
    from gradio_client import Client, handle_file

    runtime, url = served
    client = Client(url, verbose=False)
    photo = Path(runtime.catalog.get(runtime.catalog.ids()[0]).path)
    gallery, results, notes = client.predict(
        "", handle_file(str(photo)), 2, 0.5, "any", "any", "any", "any", "any", api_name="/search"
    )
    assert len(results) == 2
    assert results[0]["file"] == photo.name
    assert len(gallery) == 2
    with pytest.raises(Exception, match="description"):
        client.predict("", None, 2, 0.5, "any", "any", "any", "any", "any", api_name="/search")


def test_a_corrupt_upload_gets_a_clear_message_through_the_api(served: tuple[Runtime, str], tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    client = Client(served[1], verbose=False)
    with pytest.raises(Exception, match="corrupt|not an image"):
        client.predict("", handle_file(str(bad)), 2, 0.5, "any", "any", "any", "any", "any", api_name="/search")


def test_importing_app_reads_no_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only running the app (python app.py, gradio app.py, a Space) reads .env; importing it does not."""
    (tmp_path / ".env").write_text("CARMATCH_ADMIN_PASSWORD=from-dotenv\n")  # tmp_path is the working directory
    monkeypatch.delitem(sys.modules, "app", raising=False)  # a fresh import; the earlier module comes back after
    import app

    try:
        assert os.environ.get("CARMATCH_ADMIN_PASSWORD") is None
        assert app.runtime.settings.admin_password == ""
    finally:
        app.runtime.close()


def test_public_config_and_search_results_show_no_server_path(served: tuple[Runtime, str]) -> None:
    import httpx
    from gradio_client import Client

    runtime, url = served
    home = str(runtime.settings.home.resolve())
    config = httpx.get(f"{url}config", timeout=30).text
    assert home not in config and json.dumps(home)[1:-1] not in config
    client = Client(url, verbose=False)
    gallery, results, notes = client.predict(
        "a car", None, 3, 0.5, "any", "any", "any", "any", "any", api_name="/search"
    )
    assert len(results) == 3
    assert home not in json.dumps(results) and home not in notes
    assert all("/" not in r["file"] for r in results)
    posted = httpx.post(
        f"{url}gradio_api/call/search", json={"data": ["a car", None, 3, 0.5, *["any"] * 5]}, timeout=30
    )
    raw = httpx.get(f"{url}gradio_api/call/search/{posted.json()['event_id']}", timeout=60).text
    assert '"score"' in raw and home not in raw  # the raw answer, thumbnails included


def test_uploads_over_the_limit_are_refused_and_temp_files_expire(served: tuple[Runtime, str]) -> None:
    import httpx

    import app

    url = served[1].rstrip("/") + "/gradio_api/upload"
    small = httpx.post(url, files={"files": ("ok.bin", b"x" * 1000)}, timeout=30)
    assert small.status_code == 200
    big = httpx.post(url, files={"files": ("big.bin", b"x" * (UPLOAD_LIMIT + 1))}, timeout=30)
    assert big.status_code == 413
    assert app.demo.delete_cache == app.UPLOAD_CACHE == (300, 900)  # uploads and outputs go after 15 minutes


API_NUMBERS = [  # what a client sent to /search as (k, weight), and the message it reads back
    ("5", 0.5, None),
    (None, 0.5, "must be a whole number (got None)"),
    ("abc", 0.5, "must be a whole number (got 'abc')"),
    (12, "nan", "must be a number"),
]


def test_api_numbers_a_handler_cannot_use_come_back_as_one_line(served: tuple[Runtime, str]) -> None:
    import httpx
    from gradio_client import Client

    client = Client(served[1], verbose=False)
    for k, weight, said in API_NUMBERS:
        args = ("red car", None, k, weight, "Any", "Any", "Any", "Any", "any")
        if said is None:
            assert client.predict(*args, api_name="/search")
            continue
        with pytest.raises(Exception) as refused:  # gradio_client's AppError carries the app's message
            client.predict(*args, api_name="/search")
        assert said in str(refused.value), str(refused.value)
    for path in ("/gradio_api/queue/join", "/gradio_api/run/predict"):
        answer = httpx.post(served[1].rstrip("/") + path, json={"fn_index": 9999, "data": [], "session_hash": "x"})
        assert answer.status_code == 404 and "no endpoint number 9999" in answer.json()["error"]
