"""Environment faults (corrupt catalog, wrong home, read-only home, full disk, bad model config) are one line."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import pytest

from admin.cli import main
from carmatch.catalog import Catalog, connection
from carmatch.catalog.schema import MIGRATIONS, split_sql
from carmatch.config import Settings
from carmatch.errors import StorageError
from carmatch.runtime import Runtime
from carmatch.stores import hnsw_store


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    """The error line, after checking there is exactly one and no traceback."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_corrupt_catalog_names_the_fix(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    settings.home.mkdir(parents=True)
    settings.db_path.write_bytes(b"this is not sqlite at all" * 100)
    code, _, err = run(capsys, "search", "red car")
    line = one_line_error(err)
    assert code == 1
    assert "corrupt or truncated" in line and "backup" in line and "carmatch ingest" in line


def test_truncated_catalog_names_the_fix(
    settings: Settings, car_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "ingest", str(car_folder))[0] == 0
    data = settings.db_path.read_bytes()
    for suffix in ("-wal", "-shm"):
        Path(str(settings.db_path) + suffix).unlink(missing_ok=True)
    settings.db_path.write_bytes(data[: len(data) // 3])
    code, _, err = run(capsys, "info")
    assert code == 1
    assert "corrupt or truncated" in one_line_error(err)


def test_catalog_path_that_is_a_folder(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    settings.db_path.mkdir(parents=True)
    code, _, err = run(capsys, "info")
    assert code == 1
    assert "is a folder, not a database file" in one_line_error(err)


def test_home_that_is_a_file(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    settings.home.write_text("oops")
    code, _, err = run(capsys, "search", "red car")
    assert code == 1
    line = one_line_error(err)
    assert str(settings.home) in line and "is a file" in line and "point CARMATCH_HOME at a folder" in line


def test_malformed_model_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "broken-model.json"
    bad.write_text('{"embed_dim": 512,')
    monkeypatch.setenv("CARMATCH_MODEL", str(bad))
    monkeypatch.setenv("CARMATCH_PRETRAINED", "none")
    code, _, err = run(capsys, "search", "red car")
    assert code == 1
    assert "is not valid JSON" in one_line_error(err)


def test_full_disk_while_saving_the_index_is_one_line_and_a_rerun_catches_up(
    settings: Settings, car_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def full(path: Path | str, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(hnsw_store, "write_bytes", full)
    code, _, err = run(capsys, "ingest", str(car_folder))
    assert code == 1
    assert "is full: free some space" in one_line_error(err)
    monkeypatch.undo()
    monkeypatch.setenv("CARMATCH_HOME", str(settings.home))
    monkeypatch.setenv("CARMATCH_MODEL", settings.model)
    monkeypatch.setenv("CARMATCH_PRETRAINED", settings.pretrained)
    code, out, _ = run(capsys, "index", "rebuild")
    assert code == 0
    code, out, _ = run(capsys, "search", "red car", "--k", "6", "--json")
    assert code == 0 and out.count('"id"') == 6


def test_read_only_home_reads_and_refuses_writes(
    settings: Settings, car_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "ingest", str(car_folder))[0] == 0
    real_connect = connection.open_sqlite

    def read_only_folder(target: str, uri: bool = False) -> sqlite3.Connection:
        if not uri:  # the read-write open; running as root, chmod cannot make a folder read-only
            raise sqlite3.OperationalError("unable to open database file")
        return real_connect(target, uri)

    monkeypatch.setattr(connection, "open_sqlite", read_only_folder)
    with Catalog(settings.db_path) as catalog:
        assert catalog.read_only
        assert catalog.get_meta("no-such-key", "fallback") == "fallback"
        with pytest.raises(StorageError, match="is read-only: searching still works"):
            catalog.set_meta("note", "x")
    code, out, _ = run(capsys, "search", "red car", "--k", "3", "--json")
    assert code == 0 and out.count('"id"') == 3


def test_backups_are_timestamped_copies_and_the_newest_n_are_kept(
    settings: Settings, car_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "ingest", str(car_folder))[0] == 0
    settings = settings.with_overrides(backup_keep=2)
    written = []
    for n in range(3):
        code, out, _ = run_with(settings, capsys, "backup")
        assert code == 0 and "(6 images)" in out
        written.append(Path(out.split(" to ")[1].split(". To put")[0]))
        os.utime(written[-1], (1_000_000 + n, 1_000_000 + n))  # distinct ages, oldest first
    assert all(p.parent == settings.home / "backups" and p.name.startswith("carmatch-2") for p in written)
    assert len(set(written)) == 3
    assert sorted(p.name for p in (settings.home / "backups").iterdir()) == sorted(p.name for p in written[1:])
    with Catalog(written[-1]) as copy, Catalog(settings.db_path) as live:
        assert copy.count() == live.count() == 6


def run_with(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run a command with ``settings`` (a field the environment does not set in tests)."""
    import admin.cli

    real = admin.cli.load_settings
    admin.cli.load_settings = lambda: settings  # type: ignore[assignment]
    try:
        return run(capsys, *argv)
    finally:
        admin.cli.load_settings = real


def test_backup_without_a_catalog_says_so(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "backup")
    assert code == 1 and "no catalog" in one_line_error(err)


def test_migrating_an_old_catalog_keeps_a_copy_at_its_old_schema(settings: Settings) -> None:
    settings.home.mkdir(parents=True)
    conn = sqlite3.connect(settings.db_path, isolation_level=None)
    for statement in split_sql(MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("PRAGMA user_version=1")
    conn.close()
    with Catalog(settings.db_path) as catalog:
        assert catalog.schema_version == len(MIGRATIONS)
    saved = sqlite3.connect(settings.home / "carmatch.db.schema1.bak")
    assert saved.execute("PRAGMA user_version").fetchone()[0] == 1
    saved.close()


# The app's side, in its own process: it keeps the home open, reads the image count and writes to the catalog
# until the stop file appears, logging each count (a damaged or half-restored catalog would stop it with an error).
APP_SNIPPET = """
import sys, time
from pathlib import Path
from carmatch.config import load_settings
from carmatch.runtime import Runtime
runtime = Runtime(load_settings())
stop, log = Path(sys.argv[1]), open(sys.argv[2], "w")
tick = 0
while not stop.exists():
    log.write(f"{runtime.catalog.count()}\\n")
    log.flush()
    runtime.catalog.set_meta("app-tick", str(tick))
    tick += 1
    time.sleep(0.005)
runtime.close()
"""


def test_backup_to_the_live_catalog_and_a_restore_while_the_app_runs_keep_the_catalog_whole(
    settings: Settings, car_folder: Path, tmp_path: Path
) -> None:
    """The app (another process) reads and writes the catalog throughout; `backup --to` the catalog itself
    changes nothing, a real backup and a restore under it leave a whole catalog the app goes on using."""
    import subprocess
    import sys

    from carmatch.catalog.backups import check_catalog_file
    from tests.test_processes import wait_for

    runtime = Runtime(settings)
    runtime.ingestor().ingest_folder(car_folder)
    runtime.close()
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo), "CARMATCH_HOME": str(settings.home)}
    stop, counts = tmp_path / "stop", tmp_path / "counts.log"
    app = subprocess.Popen([sys.executable, "-c", APP_SNIPPET, str(stop), str(counts)], env=env)

    def carmatch(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "admin", *argv], env=env, capture_output=True, text=True, timeout=120
        )

    def seen() -> list[str]:
        return counts.read_text().split() if counts.exists() else []

    try:
        wait_for(lambda: "6" in seen(), "the app to read the catalog", app)
        for target in (settings.home / "." / "carmatch.db", settings.db_path.with_name("carmatch.db-wal")):
            done = carmatch("backup", "--to", str(target))
            assert done.returncode == 1 and "live catalog" in done.stderr, done.stderr
        assert check_catalog_file(settings.db_path) == 6  # intact, every image still there
        assert carmatch("backup").returncode == 0
        with Catalog(settings.db_path) as catalog:
            catalog.delete_images(catalog.ids()[:3])
        wait_for(lambda: "3" in seen(), "the app to see the deletion", app)
        done = carmatch("restore")
        assert done.returncode == 0 and "(6 images)" in done.stdout, done.stderr
        before = len(seen())
        wait_for(lambda: seen()[before:].count("6") > 0, "the app to read the restored catalog", app)
    finally:
        stop.touch()
        app.wait(timeout=60)
    assert app.returncode == 0  # the app never met a damaged or half-restored catalog
    assert set(seen()) <= {"6", "3"} and seen()[-1] == "6"
    assert check_catalog_file(settings.db_path) == 6


def test_backup_never_replaces_a_fuller_backup_or_copies_a_damaged_catalog(
    settings: Settings, car_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = Runtime(settings)
    runtime.ingestor().ingest_folder(car_folder)
    runtime.close()
    assert run(capsys, "backup")[0] == 0  # 6 images in the newest backup
    with Catalog(settings.db_path) as catalog:
        catalog.delete_images(catalog.ids()[:3])
    code, _, err = run(capsys, "backup")
    assert code == 1 and "holds 6 images" in err  # the only copy of the other three is kept
    assert run(capsys, "backup", "--force")[0] == 0
    settings.db_path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)  # damaged pages
    code, _, err = run(capsys, "backup")
    assert code == 1 and "integrity" in err


def test_an_empty_catalog_file_in_a_used_home_is_damage_not_a_new_collection(
    settings: Settings, car_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = Runtime(settings)
    runtime.ingestor().ingest_folder(car_folder)
    runtime.close()
    settings.db_path.write_bytes(b"")
    for wal in settings.home.glob("carmatch.db-*"):
        wal.unlink()
    code, _, err = run(capsys, "search", "red car")
    assert code == 1 and "empty (0 bytes)" in err and "backup" in err
    assert settings.db_path.stat().st_size == 0  # never re-initialised


def damage_a_page(db_path: Path) -> None:
    """Overwrite the first page of the images table's first index: the header opens, quick_check fails."""
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE type='index' AND tbl_name='images'").fetchone()[0]
    conn.close()
    with open(db_path, "r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(b"\xee" * page_size)


def test_damaged_pages_stop_every_command_and_the_message_names_the_newest_good_backup(
    settings: Settings, car_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "ingest", str(car_folder))[0] == 0
    assert run(capsys, "backup")[0] == 0
    newest = next((settings.home / "backups").iterdir())
    damage_a_page(settings.db_path)
    for argv in (["search", "red car"], ["info"], ["ingest", str(car_folder)], ["dataset", "stats"]):
        code, _, err = run(capsys, *argv)
        line = one_line_error(err)
        assert code == 1 and ("damaged" in line or "corrupt" in line), line
        assert f"carmatch restore {newest}" in line and "(6 images)" in line
    assert run(capsys, "restore")[0] == 0
    assert run(capsys, "search", "red car", "--k", "3", "--json")[0] == 0


def test_restore_puts_a_backup_back_and_keeps_the_catalog_it_replaced(
    settings: Settings, car_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "ingest", str(car_folder))[0] == 0
    assert run(capsys, "backup")[0] == 0
    with Catalog(settings.db_path) as catalog:
        catalog.delete_images(catalog.ids()[:2])
    code, out, _ = run(capsys, "restore")
    assert code == 0 and "(6 images)" in out
    with Catalog(settings.db_path) as catalog:
        assert catalog.count() == 6
    kept = [p for p in (settings.home / "backups").iterdir() if p.name.endswith("-before-restore.db")]
    with Catalog(kept[0]) as before:
        assert before.count() == 4  # nothing is lost by restoring either


def test_restore_refuses_a_damaged_or_missing_backup_and_changes_nothing(
    settings: Settings, car_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "ingest", str(car_folder))[0] == 0
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    before = settings.db_path.read_bytes()
    for argv in (["restore", str(bad)], ["restore", str(tmp_path / "none.db")], ["restore"]):
        code, _, err = run(capsys, *argv)
        assert code == 1 and ("cannot be restored" in err or "No good backup" in err or "no backup" in err), err
    assert settings.db_path.read_bytes() == before


def test_restore_replaces_an_unopenable_catalog_and_moves_it_aside(
    settings: Settings, car_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "ingest", str(car_folder))[0] == 0
    assert run(capsys, "backup")[0] == 0
    settings.db_path.write_bytes(b"")
    code, out, _ = run(capsys, "restore")
    assert code == 0 and "moved to" in out
    assert list(settings.home.glob("carmatch.db.damaged-*"))
    with Catalog(settings.db_path) as catalog:
        assert catalog.count() == 6


def test_backup_to_a_device_a_link_or_a_missing_folder_is_refused(
    settings: Settings, car_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "ingest", str(car_folder))[0] == 0
    link = tmp_path / "link.db"
    link.symlink_to(tmp_path / "elsewhere.db")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target, said in (
        ("/dev/null", "not a regular file"),
        (str(fifo), "not a regular file"),
        (str(link), "symbolic link"),
        (str(tmp_path / "new" / "copy.db"), "--parents"),
        (str(settings.home / "index" / "copy.db"), "live files"),
    ):
        code, _, err = run(capsys, "backup", "--to", target)
        assert code == 1 and said in one_line_error(err), err
    assert fifo.exists() and not fifo.is_file() and not (tmp_path / "new").exists() and not link.exists()
    assert run(capsys, "backup", "--to", str(tmp_path / "new" / "copy.db"), "--parents")[0] == 0
    assert check_catalog_file_count(tmp_path / "new" / "copy.db") == 6


def check_catalog_file_count(path: Path) -> int:
    from carmatch.catalog.backups import check_catalog_file

    return check_catalog_file(path)
