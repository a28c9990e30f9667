"""The hnswlib vector store: generations of saved indexes in a folder and a CURRENT pointer.

A save that changes little appends a segment to the current generation; others (and every
:data:`~carmatch.stores.index_files.COMPACT_FRACTION` of changes) write a new *generation* folder.
Either way ``CURRENT`` is then atomically rewritten to name the new state (``gen-…`` or
``gen-…/N``), so a crash or a cancelled rebuild leaves the previous index serving. One of the two
:class:`~carmatch.stores.store.VectorStore` implementations (the default; the index itself is
:class:`~carmatch.stores.index.VectorIndex`).
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from carmatch.atomic import replace_dir, staging_dir, write_bytes
from carmatch.catalog import now_iso
from carmatch.errors import IndexMissingError, StorageError
from carmatch.stores.index import CURRENT_FILE, REBUILD_HINT, STAGING_PREFIX, IndexManifest, SavedAs, VectorIndex
from carmatch.stores.index_files import (
    fresh_state,
    read_generation,
    read_manifest_at,
    segment_fits,
    split_pointer,
    write_generation,
    write_segment,
)
from carmatch.stores.write_lock import write_lock_for

log = logging.getLogger(__name__)

STALE_STAGING_SECONDS = 6 * 3600  # a staging folder this old belongs to no running save
LEFTOVER_SECONDS = 300  # a CURRENT temp file or unpointed generation this old belongs to no running save


class IndexStore:
    """The index folder: generations of saved indexes and a CURRENT pointer swapped atomically.

    Every writer holds :attr:`write_lock` from loading the index it changes to saving it (see
    :mod:`carmatch.stores.write_lock`); :meth:`save` takes it too. One of the two
    :class:`~carmatch.stores.store.VectorStore` implementations (the default).
    """

    kind = "hnswlib"

    def __init__(
        self,
        folder: Path,
        exact_max: int = 40_000,
        m: int = 16,
        ef_construction: int = 200,
        ef_search: int = 0,
        ann: str = "cells",
        probes: int = 0,
    ):
        self.folder = Path(folder)
        self.location = str(self.folder)
        self.params: dict[str, Any] = dict(
            exact_max=exact_max, m=m, ef_construction=ef_construction, ef_search=ef_search, ann=ann, probes=probes
        )
        self.write_lock = write_lock_for(self.folder)
        self.clean_leftovers()

    def clean_leftovers(self, min_age: float = LEFTOVER_SECONDS) -> list[str]:
        """Remove what a killed save left: CURRENT temp files and generations CURRENT never pointed to.

        Only leftovers older than ``min_age`` seconds go, so a save running in another process
        (which writes them for milliseconds) is never disturbed; returns the names removed.
        """
        if not self.folder.is_dir():
            return []
        pointer = self.current_generation()
        current = split_pointer(pointer)[0] if pointer else None
        removed: list[str] = []
        for child in self.folder.iterdir():
            leftover = child.name.startswith(f".{CURRENT_FILE}.") and child.name.endswith(".tmp")
            orphan = child.is_dir() and child.name.startswith("gen-") and child.name != current
            try:
                if not (leftover or orphan) or time.time() - child.stat().st_mtime < min_age:
                    continue
                shutil.rmtree(child) if orphan else child.unlink()
            except OSError as exc:  # a read-only home keeps them; searching still works
                log.debug("Could not remove leftover %s: %s", child, exc)
                continue
            removed.append(child.name)
        removed += self._clean_staging()
        if removed:
            log.info("Removed leftovers of an interrupted index save: %s", ", ".join(sorted(removed)))
        return removed

    def _clean_staging(self) -> list[str]:
        """Remove staging folders of killed saves, when no writer (in any process) holds the write lock."""
        staging = [c for c in self.folder.iterdir() if c.is_dir() and c.name.startswith(STAGING_PREFIX)]
        if not staging:
            return []
        try:
            if not self.write_lock.acquire(blocking=False):
                return []  # a save is running: its staging folder is in use
        except StorageError:
            return []  # a read-only home keeps them; searching still works
        try:
            for child in staging:
                shutil.rmtree(child, ignore_errors=True)
        finally:
            self.write_lock.release()
        return [c.name for c in staging if not c.exists()]

    def new_index(self, manifest: IndexManifest) -> VectorIndex:
        """An empty index with this store's parameters."""
        return VectorIndex(manifest, **self.params)

    def current_generation(self) -> str | None:
        """What CURRENT names: a generation and the segments appended to it (``gen-…/N``), or None."""
        try:
            name = (self.folder / CURRENT_FILE).read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def exists(self) -> bool:
        """True when a saved index exists."""
        gen = self.current_generation()
        return gen is not None and (self.folder / split_pointer(gen)[0] / "manifest.json").exists()

    def read_manifest(self) -> IndexManifest:
        """The manifest of the current index, without loading vectors."""
        gen = self.current_generation()
        if gen is None:
            raise IndexMissingError(
                f"No search index yet. Ingest images (.venv/bin/carmatch ingest DIR) or run {REBUILD_HINT}."
            )
        name, segments = split_pointer(gen)
        try:
            return read_manifest_at(self.folder / name, segments)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise IndexMissingError(f"The index manifest is unreadable ({exc}). Rebuild it: {REBUILD_HINT}") from exc

    def load(self, expected_model_key: str | None = None) -> VectorIndex:
        """Load the current index, refusing one built by another model than ``expected_model_key``."""
        self.read_manifest().refuse_other_model(expected_model_key, "The search index")
        gen = self.current_generation()
        assert gen is not None
        return read_generation(self.folder / split_pointer(gen)[0], gen, self.params)

    def describe(self) -> dict[str, Any]:
        """Which store and where (for ``admin info``)."""
        return {"store": self.kind, "store_location": str(self.folder.resolve())}

    def save(self, index: VectorIndex) -> str:
        """Save ``index`` and atomically make it current; returns what CURRENT names now.

        An index loaded from the current state with few changes since appends one segment
        (milliseconds, whatever the collection's size); otherwise a new generation is written.
        """
        with self.write_lock:
            saved, pointer = index.saved, self.current_generation()
            if saved is not None and pointer == saved.pointer and saved.folder.parent == self.folder:
                if segment_fits(index, saved):
                    return self._append(index, saved)
            gen = f"gen-{now_iso().replace(':', '').replace('-', '')}-{uuid.uuid4().hex[:8]}"
            with staging_dir(self.folder, STAGING_PREFIX) as staging:
                write_generation(index, staging)
                replace_dir(staging, self.folder / gen)
            write_bytes(self.folder / CURRENT_FILE, gen.encode())  # the swap: CURRENT names the new generation
            index.saved = fresh_state(self.folder / gen, gen, index)
            self._prune(keep={gen})
        log.info("Saved index generation %s (%d vectors)", gen, len(index))
        return gen

    def _append(self, index: VectorIndex, saved: SavedAs) -> str:
        """Write the changes since ``saved`` as one segment, then point CURRENT at it."""
        pointer = f"{split_pointer(saved.pointer)[0]}/{saved.segments + 1}"
        state = write_segment(index, saved, pointer)
        write_bytes(self.folder / CURRENT_FILE, pointer.encode())  # the swap: CURRENT names the longer state
        index.saved = state
        log.info("Appended to index generation %s (%d vectors)", pointer, len(index))
        return pointer

    def _prune(self, keep: set[str]) -> None:
        """Remove old generations and abandoned staging folders, keeping the current one."""
        for child in self.folder.iterdir():
            if not child.is_dir() or child.name in keep:
                continue
            age = time.time() - child.stat().st_mtime
            stale_staging = child.name.startswith(STAGING_PREFIX) and age > STALE_STAGING_SECONDS
            if child.name.startswith("gen-") or stale_staging:
                shutil.rmtree(child, ignore_errors=True)
