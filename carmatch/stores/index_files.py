"""An hnswlib index on disk: a generation folder written once, then small changes appended as segments.

A generation holds ``manifest.json``, ``ids.json`` (the id of each label; null for a dead one),
``vectors.npy`` (the row of each label, memory-mapped when loaded) and, above ``exact_max``,
``cells.npy`` + ``cell_of.npy`` (:mod:`carmatch.stores.cells`) or ``hnsw.bin`` (hnswlib's graph).
A later save that changes little writes only ``seg-N.npy`` (the rows added) and
``seg-N.json`` (the ids added, the labels removed, the manifest)
into the same folder, and CURRENT then names ``gen-…/N``: a crash before that leaves CURRENT naming
the previous state. Once the segments add up to :data:`COMPACT_FRACTION` of the generation (or
:data:`MAX_SEGMENTS`), the next save writes a new, compacted generation. Format 1 folders (no null
ids, no segments) load unchanged.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from carmatch.atomic import fsync_dir, fsync_file, write_bytes
from carmatch.errors import IndexMissingError
from carmatch.stores.cells import CENTRES_FILE
from carmatch.stores.index import READABLE_FORMATS, REBUILD_HINT, IndexManifest, SavedAs, VectorIndex
from carmatch.stores.rows import VectorRows

log = logging.getLogger(__name__)

COMPACT_FRACTION = 0.01  # segments may add or remove up to this fraction of the generation's rows...
COMPACT_MIN_ROWS = 256  # ...or this many, whichever is more; then the next save compacts
MAX_SEGMENTS = 32
DEAD_FRACTION = 0.1  # a graph generation keeps dead labels (marked deleted) up to this fraction


def split_pointer(pointer: str) -> tuple[str, int]:
    """CURRENT's text as (generation folder name, segments appended)."""
    name, _, count = pointer.strip().partition("/")
    return name, int(count) if count.isdigit() else 0


def segment_name(number: int) -> str:
    """The file stem of segment ``number`` (1, 2, …)."""
    return f"seg-{number:05d}"


def read_manifest_at(folder: Path, segments: int) -> IndexManifest:
    """The manifest of a generation with ``segments`` appended (the last segment carries it)."""
    if segments:
        return IndexManifest(**json.loads((folder / f"{segment_name(segments)}.json").read_text())["manifest"])
    return IndexManifest(**json.loads((folder / "manifest.json").read_text()))


def write_generation(index: VectorIndex, folder: Path) -> None:
    """Write the whole index into an (empty) folder, fsynced; the index then reads its rows from there.

    Dead labels are dropped (labels renumbered) unless the graph answers and they are few: then
    they stay, marked deleted in the saved graph, so the graph need not be built again.
    """
    folder.mkdir(parents=True, exist_ok=True)
    alive = index.alive
    dead = index.label_count - len(index)
    graph_kept = index.uses_hnsw and (index.graph_built or index.graph_file is not None)
    if index.uses_cells:
        index.cells  # noqa: B018 -- in memory before the labels are renumbered, so they follow them
    if dead and not (graph_kept and dead <= DEAD_FRACTION * index.label_count):
        live = np.flatnonzero(alive)
        ids = [index.label_ids()[label] for label in live]
        index.rows.save(folder / "vectors.npy", live)
        index.rebase(VectorRows.mapped(folder / "vectors.npy", index.dim), ids, live)  # renumbered: a new graph
    else:
        ids = [i if live else "" for i, live in zip(index.label_ids(), alive)]
        index.rows.save(folder / "vectors.npy")
        index.rebase(VectorRows.mapped(folder / "vectors.npy", index.dim))
    write_bytes(folder / "ids.json", json.dumps([i or None for i in ids]).encode())
    if index.uses_hnsw:
        graph = index.ensure_graph()
        graph.save_index(str(folder / "hnsw.bin"))  # type: ignore[attr-defined]
        fsync_file(folder / "hnsw.bin")  # hnswlib writes without fsync: flush it before CURRENT can point here
        index.graph_file, index.graph_file_labels = folder / "hnsw.bin", index.label_count
        index.search_ef()  # measured on the saved graph (or re-checked) before the manifest records it
    if index.uses_cells:
        index.cells.save(folder)
        index.cells_folder, index.cells_file_labels = folder, index.label_count
        index.search_probes()  # measured (or re-checked) before the manifest records it
    index.manifest.count = len(index)
    write_bytes(folder / "manifest.json", json.dumps(asdict(index.manifest), indent=2).encode())
    fsync_dir(folder)


def fresh_state(folder: Path, pointer: str, index: VectorIndex) -> SavedAs:
    """What :func:`write_generation` left on disk, now moved to ``folder``, as the index's saved state."""
    if index.graph_file is not None:
        index.graph_file = folder / "hnsw.bin"
    if index.cells_folder is not None:
        index.cells_folder = folder
    n = index.label_count
    return SavedAs(folder, pointer, 0, n, index.alive.copy(), 0, n)


def segment_fits(index: VectorIndex, saved: SavedAs) -> bool:
    """True when the changes since ``saved`` can go into one more segment instead of a new generation."""
    added, removed = changes(index, saved)
    budget = max(COMPACT_MIN_ROWS, COMPACT_FRACTION * saved.base_labels)
    return saved.segments < MAX_SEGMENTS and saved.changed_rows + len(added) + len(removed) <= budget


def changes(index: VectorIndex, saved: SavedAs) -> tuple[np.ndarray, np.ndarray]:
    """(labels added and still live, labels removed) since ``saved``."""
    alive = index.alive
    added = saved.labels + np.flatnonzero(alive[saved.labels :])
    removed = np.flatnonzero(saved.alive & ~alive[: saved.labels])
    return added, removed


def write_segment(index: VectorIndex, saved: SavedAs, pointer: str) -> SavedAs | None:
    """Append the changes since ``saved`` as the next segment, fsynced; returns the state CURRENT = ``pointer`` is.

    None when the in-memory labels no longer match what a load would rebuild (a row added and
    replaced since the save): the next save then writes a whole generation.
    """
    added, removed = changes(index, saved)
    number = saved.segments + 1
    stem = saved.folder / segment_name(number)
    ids = index.label_ids()
    record = {"add": [ids[label] for label in added], "remove": removed.tolist(), "manifest": asdict(index.manifest)}
    with open(stem.with_suffix(".npy"), "wb") as fh:  # no rename needed: nothing reads it before CURRENT names it
        np.save(fh, index.rows[added] if len(added) else np.zeros((0, index.dim), dtype=np.float32))
        fh.flush()
        os.fsync(fh.fileno())
    with open(stem.with_suffix(".json"), "wb") as fh:
        fh.write(json.dumps(record).encode())
        fh.flush()
        os.fsync(fh.fileno())
    fsync_dir(saved.folder)
    if len(added) != index.label_count - saved.labels:
        return None
    changed = saved.changed_rows + len(added) + len(removed)
    return replace(
        saved,
        pointer=pointer,
        segments=number,
        labels=index.label_count,
        alive=index.alive.copy(),
        changed_rows=changed,
    )


def read_generation(folder: Path, pointer: str, params: dict[str, Any]) -> VectorIndex:
    """The index CURRENT's ``pointer`` names: a generation folder and the segments appended to it."""
    segments = split_pointer(pointer)[1]
    try:
        manifest = read_manifest_at(folder, segments)
        ids = json.loads((folder / "ids.json").read_text())
        rows = VectorRows.mapped(folder / "vectors.npy", manifest.dim)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise IndexMissingError(f"The index at {folder} is unreadable ({exc}). Rebuild it: {REBUILD_HINT}") from exc
    if manifest.format_version not in READABLE_FORMATS or rows.base.shape != (len(ids), manifest.dim):
        raise IndexMissingError(f"The index at {folder} is from another format. Rebuild it: {REBUILD_HINT}")
    index = VectorIndex(manifest, **params)
    index.rebase(rows, [i or "" for i in ids])
    base_labels, changed = len(ids), 0
    for number in range(1, segments + 1):
        changed += _apply_segment(index, folder / segment_name(number))
    index.manifest = manifest  # the last segment's (count, measured ef)
    if (folder / "hnsw.bin").exists():
        index.graph_file, index.graph_file_labels = folder / "hnsw.bin", base_labels
    if (folder / CENTRES_FILE).exists():
        index.cells_folder, index.cells_file_labels = folder, base_labels
    index.saved = SavedAs(folder, pointer, segments, index.label_count, index.alive.copy(), changed, base_labels)
    return index


def _apply_segment(index: VectorIndex, stem: Path) -> int:
    """Replay one saved segment onto ``index``; returns the rows it added or removed."""
    try:
        record = json.loads(stem.with_suffix(".json").read_text())
        rows = np.load(stem.with_suffix(".npy"))
    except (OSError, ValueError, KeyError) as exc:
        raise IndexMissingError(f"The index segment {stem} is unreadable ({exc}). Rebuild it: {REBUILD_HINT}") from exc
    if rows.shape != (len(record["add"]), index.dim):
        raise IndexMissingError(f"The index segment {stem} is damaged. Rebuild it: {REBUILD_HINT}")
    index.kill_labels(record["remove"])
    if record["add"]:
        index.append_rows(record["add"], rows.astype(np.float32, copy=False))
    return len(record["add"]) + len(record["remove"])
