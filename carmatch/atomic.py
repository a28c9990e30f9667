"""Atomic writes: a crash mid-write leaves the previous file (or folder), never a half-written one.

The one writer for files that matter (exports, the index, checkpoints, thumbnails, uploads): write
to a temp file in the same folder, fsync it, ``os.replace`` it over the target, fsync the folder.
Whole folders (an index generation, an unpacked model) are built in a staging folder and swapped
in with :func:`replace_dir`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path | str) -> None:
    """Flush a file another library wrote (without fsync) to disk."""
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_open(path: Path | str, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; on success fsync it and rename it over ``path``.

    On any error the temp file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def copy_file(source: Path | str, path: Path | str) -> None:
    """Copy ``source`` to ``path`` atomically (a temp file beside ``path``, fsynced, renamed)."""
    with open(source, "rb") as src, atomic_open(path, "wb") as fh:
        shutil.copyfileobj(src, fh)


def point_link(link: Path | str, target: Path | str) -> None:
    """Make ``link`` a symbolic link to the folder ``target``, replacing any link there in one rename."""
    final = Path(link)
    partial = final.with_name(f"{final.name}.{os.getpid()}")
    partial.unlink(missing_ok=True)
    partial.symlink_to(target, target_is_directory=True)
    os.replace(partial, final)


def move_aside(path: Path | str, aside: Path | str) -> None:
    """Rename ``path`` to ``aside`` (same folder) and make the rename durable."""
    os.replace(path, aside)
    fsync_dir(Path(aside).parent)


def swap_in_copy(source: Path | str, path: Path | str, aside: Path | str) -> None:
    """Put a copy of ``source`` at ``path``, keeping what was there as ``aside``.

    The copy is written and fsynced beside ``path`` first, so ``path`` is only ever the old file or the
    whole copy; the old one is renamed to ``aside`` just before the copy is renamed into place.
    """
    target = Path(path)
    partial = target.with_name(f".{target.name}.incoming-{os.getpid()}")
    with open(source, "rb") as src, open(partial, "wb") as fh:
        shutil.copyfileobj(src, fh)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        if target.exists():
            os.replace(target, aside)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    fsync_dir(target.parent)


@contextlib.contextmanager
def staging_dir(parent: Path | str, prefix: str = ".staging-") -> Iterator[Path]:
    """A new empty folder in ``parent`` to build a folder's contents in; removed unless moved away by then."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def replace_dir(staging: Path, dest: Path) -> None:
    """Move a fully written ``staging`` folder to ``dest`` (same parent), replacing any folder there.

    ``dest`` is always either the old folder or the new one; the rename is flushed to disk.
    """
    fsync_dir(staging)
    if not dest.exists():
        os.replace(staging, dest)
        fsync_dir(dest.parent)
        return
    old = dest.with_name(f".{dest.name}-old-{uuid.uuid4().hex[:8]}")
    os.replace(dest, old)
    os.replace(staging, dest)
    fsync_dir(dest.parent)
    shutil.rmtree(old, ignore_errors=True)


def check_output_path(path: Path | str, parents: bool = False, folder: bool = False) -> Path:
    """Refuse an output path that is not a regular file (or folder) or whose parent is missing (unless ``parents``).

    A device node, FIFO, socket or symlink is never replaced by a regular file; with ``parents`` the missing
    folders are created. Returns the path; the caller writes it with :func:`atomic_open` (temp + rename).
    """
    from carmatch.errors import InvalidInputError

    path = Path(path)
    if str(path).strip() == "":
        raise InvalidInputError("The output path is empty: give a file name.")
    if path.is_symlink():
        raise InvalidInputError(f"{path} is a symbolic link: give the real file name. Nothing was written.")
    if path.exists():
        if folder and not path.is_dir():
            raise InvalidInputError(f"{path} exists and is not a folder. Nothing was written.")
        if not folder and not path.is_file():
            kind = "a folder" if path.is_dir() else "not a regular file (a device, pipe or socket)"
            raise InvalidInputError(f"{path} is {kind}: give a file name to write. Nothing was written.")
        return path
    parent = path.parent
    if not parent.is_dir():
        if parent.exists():
            raise InvalidInputError(f"{parent} is not a folder: give a path inside a folder. Nothing was written.")
        if not parents:
            raise InvalidInputError(
                f"The folder {parent} does not exist: create it, or add --parents to create it. Nothing was written."
            )
        parent.mkdir(parents=True, exist_ok=True)
    return path
