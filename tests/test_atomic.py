"""Atomic writes: a failure mid-write keeps the previous file (or folder) and leaves no temp file behind."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from carmatch.atomic import atomic_open, fsync_file, replace_dir, staging_dir, write_bytes


def test_failure_mid_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint.bin"
    write_bytes(target, b"old state")
    with pytest.raises(RuntimeError):
        with atomic_open(target, "wb") as fh:
            fh.write(b"half of the new st")
            raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old state"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.bin"]


def test_success_replaces_the_file_and_creates_folders(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "summary.json"
    with atomic_open(target, "w", encoding="utf-8") as fh:
        fh.write('{"ok": true}')
    assert target.read_text() == '{"ok": true}'
    write_bytes(target, b"{}")
    assert target.read_bytes() == b"{}"


def test_fsync_file_keeps_the_contents(tmp_path: Path) -> None:
    target = tmp_path / "hnsw.bin"
    target.write_bytes(b"graph")
    fsync_file(target)
    assert target.read_bytes() == b"graph"


def test_a_failed_folder_build_leaves_no_staging_folder_and_the_old_folder(tmp_path: Path) -> None:
    dest = tmp_path / "run"
    dest.mkdir()
    (dest / "best.pt").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with staging_dir(tmp_path, prefix=".run-") as staging:
            (staging / "best.pt").write_bytes(b"half")
            raise RuntimeError("corrupt download")
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert (dest / "best.pt").read_bytes() == b"old"


def test_replace_dir_swaps_in_the_new_folder_whole(tmp_path: Path) -> None:
    dest = tmp_path / "run"
    for contents in (b"first", b"second"):  # once into an empty place, once over an existing folder
        with staging_dir(tmp_path, prefix=".run-") as staging:
            write_bytes(staging / "best.pt", contents)
            replace_dir(staging, dest)
        assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging or old folder left
        assert [p.name for p in dest.iterdir()] == ["best.pt"] and (dest / "best.pt").read_bytes() == contents


def _renames_or_makes_temp_files(path: Path) -> bool:
    """True when the module calls os.replace / os.rename / tempfile.mkstemp / tempfile.NamedTemporaryFile."""
    banned = {("os", "replace"), ("os", "rename"), ("tempfile", "mkstemp"), ("tempfile", "NamedTemporaryFile")}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in banned:
                return True
    return False


def test_files_are_renamed_into_place_only_by_the_atomic_writer() -> None:
    root = Path(__file__).resolve().parents[1]
    sources = [*root.joinpath("carmatch").rglob("*.py"), *root.joinpath("admin").rglob("*.py"), root / "app.py"]
    writers = sorted(str(p.relative_to(root)) for p in sources if _renames_or_makes_temp_files(p))
    assert writers == ["carmatch/atomic.py"]
