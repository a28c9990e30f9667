"""What a killed index save leaves behind is removed the next time the index folder is opened."""

from __future__ import annotations

import os
import time
from pathlib import Path

from carmatch.stores.hnsw_store import LEFTOVER_SECONDS, IndexStore
from carmatch.stores.index import CURRENT_FILE


def aged(path: Path, seconds: float) -> Path:
    """``path`` with its modification time ``seconds`` in the past."""
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_a_killed_save_leaves_nothing_after_the_next_open(tmp_path: Path) -> None:
    folder = tmp_path / "index"
    (folder / "gen-current").mkdir(parents=True)
    (folder / CURRENT_FILE).write_text("gen-current")
    old = LEFTOVER_SECONDS + 60
    (folder / "gen-orphan").mkdir()  # a generation saved by a process killed before CURRENT named it
    orphan = aged(folder / "gen-orphan", old)
    (folder / f".{CURRENT_FILE}.k1ll3d.tmp").write_text("gen-orphan")
    aged(folder / f".{CURRENT_FILE}.k1ll3d.tmp", old)
    (folder / "gen-being-saved").mkdir()  # another process's save, a moment before it points CURRENT at it
    (folder / f".{CURRENT_FILE}.writing.tmp").write_text("gen-being-saved")

    store = IndexStore(folder)

    left = sorted(child.name for child in folder.iterdir())
    assert left == sorted([CURRENT_FILE, "gen-current", "gen-being-saved", f".{CURRENT_FILE}.writing.tmp"])
    assert not orphan.exists()
    assert store.current_generation() == "gen-current"
