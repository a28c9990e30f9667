"""Helpers shared by the admin command modules."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from tqdm import tqdm

from carmatch.config import ENGINES
from carmatch.errors import InvalidInputError
from carmatch.progress import Progress
from carmatch.runtime import Runtime
from carmatch.space.persistence import owner_is_alive, read_owner, restore_catalog, write_snapshot


@contextlib.contextmanager
def runtime_for(args: argparse.Namespace) -> Iterator[Runtime]:
    """Open the Runtime of the configured home, closed afterwards.

    With CARMATCH_PERSIST_DIR and no app owning it, a missing catalog is restored from the newest snapshot
    first and a command that changed the catalog writes a snapshot at the end; while an app owns the folder,
    its own snapshots carry the command's changes.
    """
    persist = args.settings.persist_folder
    owner = read_owner(persist) if persist is not None else None
    own_snapshots = persist is not None and not (owner is not None and owner_is_alive(owner))
    if own_snapshots and persist is not None:
        restore_catalog(persist, args.settings.db_path)
    runtime = Runtime(args.settings)
    before = runtime.catalog.change_marker()
    try:
        yield runtime
    finally:
        try:
            if own_snapshots and persist is not None and runtime.catalog.change_marker() != before:
                write_snapshot(runtime.catalog, persist)
        finally:
            runtime.close()


class TqdmProgress:
    """A Progress callback drawing tqdm bars, one bar per phase message."""

    def __init__(self, unit: str = "img"):
        self.unit = unit
        self.bar: tqdm | None = None
        self.phase: str | None = None

    def __call__(self, done: int, total: int, message: str) -> None:
        phase = message.split(" ", 1)[0]
        if self.bar is None or phase != self.phase:
            self.close()
            self.phase = phase
            # work done before the first report is not timed: starting from it keeps the first rate honest
            self.bar = tqdm(total=total, initial=done, desc=phase, unit=self.unit, leave=True)
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        """Finish the current bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def add_engine_option(parser: argparse.ArgumentParser) -> None:
    """``--engine local|ray``: where the images are embedded (default CARMATCH_ENGINE; cli.main applies it)."""
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        help="embed here (local) or on a Ray cluster (ray: RAY_ADDRESS, or a local Ray); default CARMATCH_ENGINE",
    )


def parse_where(items: list[str] | None) -> dict[str, str]:
    """Turn ``--where key=value`` options into a dict."""
    where: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise InvalidInputError(field="where", value=item, reason=f"{item!r}: use key=value, e.g. color=red")
        key, value = item.split("=", 1)
        where[key.strip()] = value.strip()
    return where


def steps_count(text: str) -> int:
    """An argparse type: a whole number of steps, 0 or more (a negative count is refused, not read as a default)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {value}); leave it out for the default")
    return value


def as_progress(progress: TqdmProgress) -> Progress:
    """Type adapter: a TqdmProgress is a Progress callback."""
    return progress
