"""How the CLI is started: the ``carmatch`` console script and ``python -m admin`` both run it under their own name."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from admin.cli import main

REPO = Path(__file__).resolve().parents[2]
COMMANDS = [
    "ingest",
    "search",
    "info",
    "relocate",
    "index",
    "caption",
    "dataset",
    "demo",
    "train",
    "eval",
    "model",
    "titan",
    "aws",
    "backup",
    "restore",
]


def listed_commands(help_text: str) -> list[str]:
    """The subcommands a --help text lists, in order."""
    return re.findall(r"^ {4}(\w+) ", help_text, flags=re.MULTILINE)


@pytest.mark.parametrize(
    "argv0,prog",
    [
        ("/home/me/.venv/bin/carmatch", "carmatch"),
        ("/opt/venv/Scripts/carmatch.exe", "carmatch"),
        ("/work/main/admin/__main__.py", "python -m admin"),
    ],
)
def test_usage_and_errors_name_the_command_the_user_typed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv0: str, prog: str
) -> None:
    monkeypatch.setattr(sys, "argv", [argv0])
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0
    assert out.startswith(f"usage: {prog} [-h] [-v] COMMAND ...")
    assert listed_commands(out) == COMMANDS
    with pytest.raises(SystemExit) as exited:
        main(["no-such-command"])
    assert exited.value.code == 2
    assert f"{prog}: error: argument COMMAND: invalid choice" in capsys.readouterr().err


def test_python_m_admin_still_runs_every_command_group(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "admin", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # no .env of the developer's
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m admin [-h]")
    assert listed_commands(done.stdout) == COMMANDS


def test_console_script_carmatch_runs_admin_cli_main() -> None:
    text = (REPO / "pyproject.toml").read_text()
    scripts = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^carmatch\s*=\s*"admin\.cli:main"\s*$', scripts, flags=re.MULTILINE)
