"""Curated work survives restarts: catalog snapshots in CARMATCH_PERSIST_DIR, restored at start, one owner."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carmatch.catalog import Catalog
from carmatch.config import Settings
from carmatch.errors import StorageError
from carmatch.runtime import Runtime
from carmatch.space import persistence
from carmatch.space.persistence import (
    OWNER_FILE,
    Persister,
    claim,
    newest_good_snapshot,
    restore_catalog,
    snapshots,
    write_snapshot,
)
from carmatch.startup import open_runtime

REPO = Path(__file__).resolve().parents[2]


def write_owner(persist: Path, host: str, pid: int, heartbeat: float) -> None:
    persist.mkdir(parents=True, exist_ok=True)
    (persist / OWNER_FILE).write_text(json.dumps({"host": host, "pid": pid, "heartbeat": heartbeat}))


def test_a_snapshot_restores_every_caption_state_and_attribute(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "live" / "carmatch.db")
    image_id = "a" * 64
    assert catalog.add_image(image_id, str(tmp_path / "a.jpg"), 10, 10)
    catalog.set_caption(image_id, "a red sedan", "human", attributes={"color": "red"}, review_state="approved")
    persist = tmp_path / "persist"
    write_snapshot(catalog, persist)
    catalog.close()
    fresh = tmp_path / "new-machine" / "carmatch.db"
    assert restore_catalog(persist, fresh) is not None
    restored = Catalog(fresh).get(image_id)
    assert (restored.caption, restored.review_state, restored.attributes["color"]) == ("a red sedan", "approved", "red")


def test_restore_never_replaces_a_local_catalog(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "carmatch.db")
    write_snapshot(catalog, tmp_path / "persist")
    assert restore_catalog(tmp_path / "persist", tmp_path / "carmatch.db") is None


def test_a_damaged_newest_snapshot_is_skipped_for_the_one_before(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "carmatch.db")
    persist = tmp_path / "persist"
    good = write_snapshot(catalog, persist)
    catalog.set_meta("x", "1")
    damaged = write_snapshot(catalog, persist)
    damaged.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    assert snapshots(persist)[0] == damaged
    assert newest_good_snapshot(persist) == good


def test_only_the_newest_snapshots_are_kept(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "carmatch.db")
    for n in range(persistence.KEEP_SNAPSHOTS + 2):
        catalog.set_meta("n", str(n))
        write_snapshot(catalog, tmp_path / "persist")
    assert len(snapshots(tmp_path / "persist")) == persistence.KEEP_SNAPSHOTS


def test_the_persister_writes_only_after_a_change(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "carmatch.db")
    persister = Persister(catalog, tmp_path / "persist", every_seconds=60)
    first = persister.snapshot_if_changed()
    assert first is not None
    assert persister.snapshot_if_changed() is None  # nothing changed: the snapshot itself is no change
    catalog.set_meta("edited", "yes")
    assert persister.snapshot_if_changed() is not None
    other = Catalog(tmp_path / "carmatch.db")  # another process's connection (the CLI beside the app)
    other.set_meta("by", "cli")
    assert persister.snapshot_if_changed() is not None
    assert persister.describe()["last_snapshot"] is not None


def test_a_second_app_on_the_same_folder_is_refused_while_the_first_lives(tmp_path: Path) -> None:
    persist = tmp_path / "persist"
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        write_owner(persist, socket.gethostname(), other.pid, time.time())
        with pytest.raises(StorageError, match="Another carmatch"):
            claim(persist, wait_seconds=0)
    finally:
        other.kill()
        other.wait()
    claim(persist, wait_seconds=0)  # the owner is gone: taken over at once
    assert json.loads((persist / OWNER_FILE).read_text())["pid"] == os.getpid()


def test_another_hosts_fresh_claim_is_refused_and_a_stale_one_taken_over(tmp_path: Path) -> None:
    persist = tmp_path / "persist"
    write_owner(persist, "old-machine", 1, time.time())
    with pytest.raises(StorageError, match="old-machine"):
        claim(persist, wait_seconds=0)
    write_owner(persist, "old-machine", 1, time.time() - persistence.LEASE_SECONDS - 1)
    claim(persist, wait_seconds=0)


def test_the_app_start_refuses_a_folder_another_live_app_owns(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second app gets the start-up fault page with the reason, and the first one's work is untouched."""
    persist = tmp_path / "persist"
    monkeypatch.setenv("CARMATCH_PERSIST_DIR", str(persist))
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        write_owner(persist, socket.gethostname(), other.pid, time.time())
        opened = open_runtime()
        assert not isinstance(opened, Runtime)
        assert "Another carmatch" in str(opened.error) and str(other.pid) in str(opened.error)
        assert not snapshots(persist)
    finally:
        other.kill()
        other.wait()
    opened = open_runtime()
    assert isinstance(opened, Runtime) and opened.persister is not None
    opened.close()
    assert snapshots(persist) and not (persist / OWNER_FILE).exists()  # a last snapshot, the claim given up


def test_files_that_must_last_go_to_the_persist_folder(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "local", persist_dir=str(tmp_path / "bucket"))
    assert settings.runs_dir == tmp_path / "bucket" / "runs"
    assert settings.uploads_dir == tmp_path / "bucket" / "uploads"
    assert settings.db_path == tmp_path / "local" / "carmatch.db"  # SQLite never on the network mount
    assert Settings(home=tmp_path).runs_dir == tmp_path / "runs"


def child_env(tmp_path: Path, tiny_model: tuple[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SPACE_ID": "someone/carmatch",
        "CARMATCH_HOME": str(tmp_path / "local"),
        "CARMATCH_PERSIST_DIR": str(tmp_path / "bucket"),
        "CARMATCH_PERSIST_SECONDS": "1",
        "CARMATCH_MODEL": tiny_model[0],
        "CARMATCH_PRETRAINED": tiny_model[1],
        "CARMATCH_DEVICE": "cpu",
        "CARMATCH_DEMO": "0",
        "OMP_NUM_THREADS": "1",
    }


def test_a_killed_space_loses_no_saved_caption_attribute_or_run(tmp_path: Path, tiny_model: tuple[str, str]) -> None:
    """The Space start-up path: write, SIGKILL mid-way, wipe the local disk, start again: all saved work is back."""
    cars = tmp_path / "cars"
    env = child_env(tmp_path, tiny_model)
    child = [sys.executable, "-m", "tests.space.persist_child"]
    writer = subprocess.Popen(
        [*child, "write", str(cars)], env=env, cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    saved = 0
    assert writer.stdout is not None
    for line in writer.stdout:
        assert not line.startswith("fault"), line
        if line.startswith("saved "):
            saved = int(line.split()[1])
            if saved == 3:
                break
    writer.send_signal(signal.SIGKILL)  # mid-way through edit 4
    writer.wait(timeout=60)
    assert saved == 3
    shutil.rmtree(tmp_path / "local")  # a restarted Space: nothing of the local disk is left

    reader = subprocess.run([*child, "read"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert reader.returncode == 0, reader.stdout + reader.stderr
    restored = json.loads(reader.stdout.strip().splitlines()[-1])
    edited = {image["caption"] for image in restored["images"].values()}
    assert {"edited caption 1", "edited caption 2", "edited caption 3"} <= edited
    assert all(image["state"] == "approved" for image in restored["images"].values()), restored["images"]
    assert all(image["attributes"].get("color") for image in restored["images"].values())
    assert len(restored["images"]) >= 15
    (run,) = restored["runs"].values()
    assert run["status"] == "ready" and run["exists"] and str(tmp_path / "bucket") in run["checkpoint"]
    assert restored["hits"] == 3  # the index came back from the cached embeddings


def test_info_shows_where_work_lasts_and_when_it_was_last_saved(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from admin.cli import main

    persist = tmp_path / "bucket"
    monkeypatch.setenv("CARMATCH_PERSIST_DIR", str(persist))
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"Persist dir:  {persist}" in out and "Last saved:   -" in out
    catalog = Catalog(settings.db_path)
    write_snapshot(catalog, persist)
    catalog.close()
    assert main(["info"]) == 0
    saved = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("Last saved:"))
    assert saved.split()[-1].startswith("20")  # an ISO time


def test_a_cli_command_beside_no_app_restores_first_and_saves_its_change(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from admin.cli import main

    persist, moved = tmp_path / "bucket", tmp_path / "moved"
    moved.mkdir()
    catalog = Catalog(settings.db_path)
    catalog.add_image("b" * 64, "/old/place/a.jpg", 10, 10)
    write_snapshot(catalog, persist)
    catalog.close()
    settings.db_path.unlink()  # a new machine: only the persist folder is left
    monkeypatch.setenv("CARMATCH_PERSIST_DIR", str(persist))
    assert main(["relocate", "/old/place", str(moved)]) == 0
    assert len(snapshots(persist)) == 2  # the command's change was saved
    restored = tmp_path / "again" / "carmatch.db"
    restore_catalog(persist, restored)
    assert Catalog(restored).get("b" * 64).path == str(moved / "a.jpg")
