"""The index's vectors by label: one copy, a saved matrix memory-mapped from disk plus the rows added since.

The saved ``vectors.npy`` of a generation is mapped read-only, never read into memory: exact search
touches its pages (shared with every process that maps the same file), and when the hnswlib graph
answers instead, the rare bulk reads (measuring ef, a filtered exact search) hand their pages back
with :meth:`VectorRows.release`, so the graph's own copy is the only one that stays resident.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from carmatch.atomic import fsync_file

BLOCK_ROWS = 65_536  # rows per block when streaming the matrix (a 512-d block is 128 MB)


class VectorRows:
    """Unit float32 rows by label: ``base`` (often a read-only memory map) followed by an in-memory tail."""

    def __init__(self, dim: int, base: np.ndarray | None = None):
        self.dim = dim
        self.base = base if base is not None else np.zeros((0, dim), dtype=np.float32)
        self._tail = np.zeros((0, dim), dtype=np.float32)  # a buffer with room to grow
        self._tail_rows = 0

    @classmethod
    def mapped(cls, path: Path, dim: int) -> VectorRows:
        """Rows memory-mapped read-only from a saved ``.npy`` (copied into memory only if not float32)."""
        base = np.load(path, mmap_mode="r")
        if base.dtype != np.float32:
            base = base.astype(np.float32)
        return cls(dim, base)

    def __len__(self) -> int:
        return len(self.base) + self._tail_rows

    @property
    def tail(self) -> np.ndarray:
        """The rows added after the base (in memory)."""
        return self._tail[: self._tail_rows]

    def append(self, rows: np.ndarray) -> None:
        """Add rows at the end (amortised: the tail buffer doubles when full)."""
        end = self._tail_rows + len(rows)
        if end > len(self._tail):
            grown = np.zeros((max(end, 2 * len(self._tail), 64), self.dim), dtype=np.float32)
            grown[: self._tail_rows] = self.tail
            self._tail = grown
        self._tail[self._tail_rows : end] = rows
        self._tail_rows = end

    def __getitem__(self, key: slice | np.ndarray | list[int]) -> np.ndarray:
        """Rows by a slice (start:stop; read-only, a view where it can be) or by an array of labels (a copy)."""
        if isinstance(key, slice):
            start, stop, _ = key.indices(len(self))
            split = len(self.base)
            head = np.asarray(self.base[min(start, split) : min(stop, split)])
            rest = self.tail[max(start - split, 0) : max(stop - split, 0)]
            return np.concatenate([head, rest]) if len(rest) and len(head) else (rest if len(rest) else head)
        labels = np.asarray(key, dtype=np.int64)
        split = len(self.base)
        if not self._tail_rows or (len(labels) and labels.max() < split):  # one part: one gather, no masks
            return np.asarray(self.base[labels], dtype=np.float32)
        if not split:
            return self.tail[labels]
        out = np.empty((len(labels), self.dim), dtype=np.float32)
        in_base = labels < len(self.base)
        out[in_base] = self.base[labels[in_base]]
        out[~in_base] = self.tail[labels[~in_base] - len(self.base)]
        return out

    def blocks(self, rows: int = BLOCK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        """(first label, rows) blocks over every row, in order."""
        for start in range(0, len(self), rows):
            yield start, self[start : start + rows]

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Dot product of every row with ``query`` (cosine similarity for unit rows)."""
        if not self._tail_rows:
            return np.asarray(self.base @ query)
        return np.concatenate([self.base @ query, self.tail @ query])

    def release(self) -> None:
        """Drop the mapped base's pages from this process's memory (they are read from the file again if needed)."""
        mapping = getattr(self.base, "_mmap", None)
        if isinstance(mapping, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
            mapping.madvise(mmap.MADV_DONTNEED)

    def save(self, path: Path, labels: np.ndarray | None = None) -> None:
        """Write the rows (or only ``labels``, in order) as a float32 ``.npy``, block by block, fsynced."""
        count = len(self) if labels is None else len(labels)
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(count, self.dim))
        for start in range(0, count, BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, count)
            out[start:stop] = self[start:stop] if labels is None else self[labels[start:stop]]
        out.flush()
        del out
        fsync_file(path)
        self.release()
