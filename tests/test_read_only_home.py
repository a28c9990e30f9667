"""A truly read-only CARMATCH_HOME: search and info work, every write says why it cannot.

The home's files and folders lose their write bits. Root ignores them, so when the tests run as
root the checks run as the unprivileged ``nobody`` (``setpriv``); otherwise as the test's own user.
No write lock file exists beforehand, so a search that took the index write lock would fail.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from carmatch.catalog import Catalog
from carmatch.config import load_settings
from carmatch.embedding.embedder import Embedder
from carmatch.runtime import Runtime
from tests.conftest import draw_car_folder

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "read-only-admin"
READ_ONLY_LINE = "is read-only: searching still works, but changes cannot be saved"
# Run inside the read-only home as the user who cannot write it: the CLI, then the app's library calls.
CHECKS = """
import contextlib, io, json, sys
from admin.cli import main

done = []
for argv in (["search", "red car", "--k", "3", "--json"], ["info"], ["ingest", sys.argv[1]], ["index", "rebuild"]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    done.append({"argv": argv, "code": code, "out": out.getvalue(), "err": err.getvalue()})

import gradio as gr
import app  # the app starts on a read-only home
from carmatch.ui import dataset_actions, dataset_files_actions, search_actions
from carmatch.ui.common import user_errors

gallery, results, _ = search_actions.search(app.runtime, "red car", None, 3, 0.5)
app_search = {"results": len(results), "in_memory": sum(not isinstance(t, str) for t, _ in gallery)}
grid = dataset_actions.load_page(app.runtime, dataset_actions.make_query()).gallery  # the Dataset tab browses
app_search["grid_in_memory"] = sum(not isinstance(t, str) for t, _ in grid)
try:  # as the Dataset tab's upload button runs it
    user_errors(dataset_files_actions.add_images)(app.runtime, sys.argv[2], [sys.argv[3]])
    upload = "accepted"
except gr.Error as exc:
    upload = exc.message
print("RESULT " + json.dumps({"cli": done, "app_search": app_search, "upload": upload}))
"""


def run_as_reader() -> list[str]:
    """The command prefix that runs a process as a user who cannot write the home (nobody when we are root)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        nobody = None
    if setpriv is None or nobody is None:
        pytest.skip("running as root without setpriv or a 'nobody' user: a read-only folder cannot be simulated")
    return [setpriv, f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]


def make_read_only(root: Path) -> None:
    """Take every write bit off ``root`` and everything in it (reading and listing stay allowed)."""
    for path in [root, *root.rglob("*")]:
        mode = 0o555 if path.is_dir() else 0o444
        path.chmod(mode)


def make_writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder every user can read (the test's tmp_path is private to root), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="carmatch-read-only-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        make_writable(folder)
        shutil.rmtree(folder)


def test_read_only_home_searches_and_every_write_says_why(
    shared_folder: Path, tiny_model: tuple[str, str], embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = run_as_reader()
    model = shared_folder / "model"
    model.mkdir()
    config, checkpoint = (Path(shutil.copy(path, model)) for path in tiny_model)
    home, cars = shared_folder / "home", draw_car_folder(shared_folder / "cars")
    monkeypatch.setenv("CARMATCH_HOME", str(home))
    runtime = Runtime(load_settings(), embedder=embedder)
    runtime.ingestor().ingest_folder(cars)
    runtime.close()
    lock_files = sorted(home.glob(".*write-*"))
    for path in lock_files:  # as in a home whose writer never ran here: nothing to lock with
        path.unlink()
    new_car = shared_folder / "new" / "car.png"
    shutil.copytree(cars / "sub", new_car.parent)
    new_car = next(new_car.parent.glob("*.webp"))
    scratch = shared_folder / "scratch"  # the reader's own writable caches (Gradio's temp folder, HOME)
    scratch.mkdir(mode=0o777)
    scratch.chmod(0o777)
    make_read_only(home)
    make_read_only(model)
    make_read_only(cars)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CARMATCH_", "AWS_"))}
    env.update(
        CARMATCH_HOME=str(home),
        CARMATCH_MODEL=str(config),
        CARMATCH_PRETRAINED=str(checkpoint),
        CARMATCH_DEVICE="cpu",
        CARMATCH_ADMIN_PASSWORD=PASSWORD,
        HOME=str(scratch),
        XDG_CACHE_HOME=str(scratch),
        GRADIO_TEMP_DIR=str(scratch / "gradio"),
        MPLCONFIGDIR=str(scratch),
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(REPO),
    )
    done = subprocess.run(
        [*prefix, sys.executable, "-c", CHECKS, str(new_car.parent), PASSWORD, str(new_car)],
        cwd=scratch,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[0].removeprefix("RESULT "))
    search, info, ingest, rebuild = result["cli"]
    assert search["code"] == 0 and search["out"].count('"id"') == 3, search
    assert info["code"] == 0 and "Images:       6" in info["out"], info
    for refused in (ingest, rebuild):
        errors = [line for line in refused["err"].splitlines() if line.startswith("error:")]
        assert refused["code"] == 1 and "Traceback" not in refused["err"], refused
        assert len(errors) == 1 and READ_ONLY_LINE in errors[0], refused
    assert result["app_search"] == {"results": 3, "in_memory": 3, "grid_in_memory": 6}  # thumbnails not cached
    assert READ_ONLY_LINE in result["upload"]
    assert not list(home.glob(".*write-*")), "a reader created the index write lock"
    with Catalog(home / "carmatch.db") as catalog:
        assert catalog.count() == 6  # nothing was added
