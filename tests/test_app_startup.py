"""The app comes up whatever state its data is in: a fault at start is a notice, not a traceback.

A visitor's Search tab says search is unavailable, in plain words and with no server path; an admin
who unlocks reads the one-line message with its fix, which is also in the app's log.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from carmatch.access import UnlockThrottle
from carmatch.startup import StartupFault

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "startup-admin"


def corrupt_catalog(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "carmatch.db").write_bytes(b"this is not sqlite at all" * 100)


def catalog_is_a_folder(home: Path) -> None:
    (home / "carmatch.db").mkdir(parents=True)


def home_is_a_file(home: Path) -> None:
    home.write_text("oops")


FAULTS: list[tuple[str, Callable[[Path], None], str]] = [  # (what is wrong, how to break it, what the admin reads)
    ("corrupt catalog", corrupt_catalog, "is corrupt or truncated"),
    ("catalog path is a folder", catalog_is_a_folder, "is a folder, not a database file"),
    ("CARMATCH_HOME is a file", home_is_a_file, "is a file, not a folder: point CARMATCH_HOME at a folder"),
]


@pytest.fixture
def fresh_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Any]]:
    """Import app anew (it opens its data at import); the earlier module comes back afterwards."""
    monkeypatch.delitem(sys.modules, "app", raising=False)
    imported: list[Any] = []

    def load() -> Any:
        import app

        imported.append(app)
        return app

    yield load
    for app in imported:
        if app.runtime is not None:
            app.runtime.close()


def shown_markdown(demo: Any, elem_id: str) -> str:
    """The text a Markdown block with ``elem_id`` shows when the page opens."""
    return next(block.value for block in demo.blocks.values() if getattr(block, "elem_id", None) == elem_id)


@pytest.mark.parametrize(("fault", "breaks", "message"), FAULTS, ids=[f[0] for f in FAULTS])
def test_a_fault_at_start_shows_a_notice_to_visitors_and_the_fix_to_admins(
    fault: str,
    breaks: Callable[[Path], None],
    message: str,
    fresh_app: Callable[[], Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from carmatch.ui import startup_fault

    home = Path(os.environ["CARMATCH_HOME"])
    breaks(home)
    monkeypatch.setenv("CARMATCH_ADMIN_PASSWORD", PASSWORD)
    app = fresh_app()
    assert app.runtime is None and isinstance(app.opened, StartupFault)
    assert message in str(app.opened.error)
    assert any(message in record.getMessage() for record in caplog.records if record.levelname == "ERROR")
    assert shown_markdown(app.demo, "search-status") == startup_fault.PUBLIC_NOTICE
    page = json.dumps(app.demo.get_config_file())
    assert str(home) not in page and "carmatch.db" not in page  # nothing a visitor can use
    throttle = UnlockThrottle()
    details, access = startup_fault.reveal(app.opened, throttle, "guess", "203.0.113.7")
    assert details == "" and "Wrong admin password" in access
    details, access = startup_fault.reveal(app.opened, throttle, PASSWORD, "203.0.113.7")
    assert message.split(":")[0] in details.replace("\\", "") and str(home.name) in details
    assert "Unlocked" in access


def test_unreadable_settings_at_start_show_the_notice_and_point_admins_to_the_log(
    fresh_app: Callable[[], Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from carmatch.ui import startup_fault

    monkeypatch.setenv("CARMATCH_DEVICE", "toaster")
    app = fresh_app()
    assert app.runtime is None and app.opened.settings is None
    assert any("CARMATCH_DEVICE='toaster'" in record.getMessage() for record in caplog.records)
    assert shown_markdown(app.demo, "search-status") == startup_fault.PUBLIC_NOTICE
    assert startup_fault.reveal(app.opened, UnlockThrottle(), "anything", "x") == ("", startup_fault.NO_SETTINGS_NOTE)
    assert app.settings.max_upload_bytes > 0  # the default upload limit still applies


def test_a_malformed_model_config_at_start_is_a_status_line_not_a_crash(
    fresh_app: Callable[[], Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from carmatch.ui import search_actions, server_status

    bad = tmp_path / "models" / "broken-model.json"
    bad.parent.mkdir()
    bad.write_text('{"embed_dim": 512,')
    monkeypatch.setenv("CARMATCH_MODEL", str(bad))
    monkeypatch.setenv("CARMATCH_PRETRAINED", "none")
    app = fresh_app()
    assert app.runtime is not None  # the collection opens; the model is what failed
    assert "is not valid JSON" in " ".join(app.runtime.info(load_model=True)["problems"])
    status = search_actions.status_markdown(app.runtime)
    assert status.startswith(server_status.UNAVAILABLE) and "JSON" not in status and str(bad.parent) not in status
    assert "not valid JSON" in server_status.admin_status(app.runtime)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_python_app_py_comes_up_on_a_corrupt_catalog_and_logs_the_fix(tmp_path: Path) -> None:
    import httpx

    home = tmp_path / "home"
    corrupt_catalog(home)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CARMATCH_", "AWS_"))}
    env.update(
        CARMATCH_HOME=str(home),
        GRADIO_SERVER_PORT=str(free_port()),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    server = subprocess.Popen(
        [sys.executable, str(REPO / "app.py")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        output: list[str] = []
        for line in server.stdout:  # ends when the app exits: a crash fails below instead of hanging
            output.append(line)
            if "Running on local URL:" in line:
                break
        log = "".join(output)
        assert "Running on local URL:" in log and "Traceback" not in log, log
        assert (
            "corrupt or truncated" in log and "No good backup was found" in log and "carmatch ingest" in log
        )  # logged, with the fix
        url = log.split("Running on local URL:")[1].split()[0]
        page = httpx.get(f"{url.rstrip('/')}/config", timeout=30).text
        assert "Search is unavailable right now" in page
        assert str(home) not in page and "carmatch.db" not in page
    finally:
        server.terminate()
        server.wait(timeout=60)
