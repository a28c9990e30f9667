"""Atomic writes: a failure mid-write keeps the previous file and leaves no temp file behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from carmatch.atomic import atomic_open, write_bytes


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
