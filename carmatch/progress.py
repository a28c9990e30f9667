"""Progress reporting shared by every long-running job (tqdm in the CLI, gr.Progress in the app)."""

from __future__ import annotations

from collections.abc import Callable

# progress(done, total, message): called as work advances
Progress = Callable[[int, int, str], None]


def no_progress(done: int, total: int, message: str) -> None:
    """A Progress callback that reports nothing."""
    return None
