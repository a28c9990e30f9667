"""Rebuild: embed what a model has not seen, then assemble its whole index and swap it in.

Used by ``carmatch index rebuild`` and by model activation. The slow part (encoding) runs
outside the index write lock, so uploads and deletes go on meanwhile; the catch-up for images added
since, the assembly and the swap run under it (see :mod:`carmatch.stores.write_lock`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from carmatch.catalog import Catalog
from carmatch.embedding.embedder import Embedder
from carmatch.errors import CancelledError, ImageError
from carmatch.images import load_image
from carmatch.ingest.pipeline import Limits, manifest_for
from carmatch.progress import Progress, no_progress
from carmatch.stores.store import SearchIndex, VectorStore

log = logging.getLogger(__name__)

REBUILD_CHUNK = 5_000  # cached embeddings read per query while assembling a rebuilt index

# embed_missing's signature: the local loop below, or the Ray engine's (carmatch.ingest.ray_ingest)
EmbedMissing = Callable[
    [Catalog, Embedder, int, Progress, "threading.Event | None", Limits], tuple[int, list[tuple[str, str]]]
]


def missing_ids(catalog: Catalog, model_key: str) -> list[str]:
    """Live images with no cached embedding from the model ``model_key``, in catalog order."""
    have = catalog.embedded_ids(model_key)
    return [i for i in catalog.ids() if i not in have]


def embed_missing(
    catalog: Catalog,
    embedder: Embedder,
    batch_size: int = 32,
    progress: Progress = no_progress,
    cancel: threading.Event | None = None,
    limits: Limits = Limits(),
) -> tuple[int, list[tuple[str, str]]]:
    """Embed every live image lacking an embedding for ``embedder``; returns (count, failures)."""
    todo = missing_ids(catalog, embedder.model_key)
    records = catalog.get_many(todo)
    failures: list[tuple[str, str]] = []
    done, side = 0, embedder.image_side  # decoded as ingest decodes them
    for start in range(0, len(todo), batch_size):
        if cancel is not None and cancel.is_set():
            raise CancelledError("Rebuild cancelled; the previous index is still serving.")
        ids, images = [], []
        for image_id in todo[start : start + batch_size]:
            path = records[image_id].path
            try:
                images.append(load_image(Path(path), limits.max_pixels, limits.max_bytes, side).image)
                ids.append(image_id)
            except ImageError as exc:
                failures.append((image_id, f"{path}: {exc}"))
        if ids:
            catalog.put_embeddings(embedder.model_key, ids, embedder.encode_images(images, batch_size))
        done += len(todo[start : start + batch_size])
        progress(done, len(todo), "embedding")
    return done - len(failures), failures


def rebuild_index(
    catalog: Catalog,
    embedder: Embedder,
    store: VectorStore,
    batch_size: int = 32,
    progress: Progress = no_progress,
    cancel: threading.Event | None = None,
    limits: Limits = Limits(),
    embed: EmbedMissing | None = None,
) -> tuple[SearchIndex, list[tuple[str, str]]]:
    """Build a fresh index for ``embedder`` beside the live one, then swap it in atomically.

    Cached embeddings are reused; only images without one for this model are encoded, most of them
    before taking the index write lock; under it, images added meanwhile are encoded and the index is
    assembled from the catalog and saved. A cancel or failure before the swap leaves the previous
    index serving. ``embed`` encodes what is missing (default: :func:`embed_missing`, in this process).
    """
    embed = embed or embed_missing
    _, failures = embed(catalog, embedder, batch_size, progress, cancel, limits)
    with store.write_lock.holding("rebuild", progress):
        _, late_failures = embed(catalog, embedder, batch_size, progress, cancel, limits)
        index = store.new_index(manifest_for(embedder))
        try:
            _fill_from_cache(catalog, embedder.model_key, index, cancel)
            store.save(index)
        except BaseException:
            discard = getattr(index, "discard", None)  # a Milvus build drops its unfinished collection
            if discard is not None:
                discard()
            raise
    return index, _merge_failures(failures, late_failures)


def _fill_from_cache(catalog: Catalog, model_key: str, index: SearchIndex, cancel: threading.Event | None) -> None:
    """Add every live image's cached embedding to ``index`` (nothing is re-embedded)."""
    ids = catalog.ids()
    for start in range(0, len(ids), REBUILD_CHUNK):
        if cancel is not None and cancel.is_set():
            raise CancelledError("Rebuild cancelled; the previous index is still serving.")
        cached = catalog.get_embeddings(model_key, ids[start : start + REBUILD_CHUNK])
        chunk = [i for i in ids[start : start + REBUILD_CHUNK] if i in cached]
        if chunk:
            index.add(chunk, np.stack([cached[i] for i in chunk]))
    if cancel is not None and cancel.is_set():
        raise CancelledError("Rebuild cancelled; the previous index is still serving.")


def _merge_failures(first: list[tuple[str, str]], second: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Failures of both passes, each image once (an unreadable image fails in both)."""
    seen = {image_id for image_id, _ in first}
    return first + [failure for failure in second if failure[0] not in seen]
