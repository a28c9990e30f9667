"""Move the index between vector stores (hnswlib <-> Milvus) from cached embeddings, never re-embedding.

``carmatch index migrate --to milvus`` builds the active model's index in the other store
beside nothing that serves (the current store keeps answering), verifies the count, makes it that
store's current generation, then records ``CARMATCH_VECTOR_STORE`` in the ``.env`` file the entry
points read. A failure or cancel before the switch leaves the setting and the current store as they were.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carmatch.atomic import write_bytes
from carmatch.catalog import Catalog
from carmatch.config import VECTOR_STORES, Settings
from carmatch.errors import CancelledError, CarmatchError, InvalidInputError
from carmatch.progress import Progress, no_progress
from carmatch.stores.index import IndexManifest
from carmatch.stores.opening import open_store
from carmatch.stores.store import VectorStore

log = logging.getLogger(__name__)

MIGRATE_CHUNK = 5_000  # cached embeddings read and written per step
STORE_VARIABLE = "CARMATCH_VECTOR_STORE"


@dataclass
class MigrationReport:
    """What a migration copied and where the setting now points."""

    source: str
    target: str
    copied: int
    without_embedding: int
    env_file: str | None
    overridden_by_environment: bool = False

    def summary(self) -> str:
        """A few lines for the CLI."""
        lines = [f"Copied {self.copied} vector(s) from {self.source} to {self.target}; counts verified."]
        if self.without_embedding:
            lines.append(
                f"{self.without_embedding} image(s) have no cached embedding for this model and were not copied; "
                "embed them with: .venv/bin/carmatch index rebuild"
            )
        if self.env_file:
            lines.append(f"{STORE_VARIABLE}={self.target} is now set in {self.env_file}.")
        if self.overridden_by_environment:
            lines.append(
                f"Your environment sets {STORE_VARIABLE} to something else, and it wins over .env: "
                f"change it to {self.target}."
            )
        return "\n".join(lines)


def migrate_store(
    settings: Settings,
    catalog: Catalog,
    source: VectorStore,
    target_kind: str,
    env_file: Path | None = None,
    progress: Progress = no_progress,
    cancel: threading.Event | None = None,
) -> MigrationReport:
    """Copy the source store's model's cached embeddings into ``target_kind``'s store and switch to it."""
    if target_kind not in VECTOR_STORES:
        raise InvalidInputError(field="to", value=target_kind, reason=f"use one of {', '.join(VECTOR_STORES)}")
    if target_kind == source.kind:
        raise InvalidInputError(field="to", value=target_kind, reason=f"is the store in use ({source.location})")
    manifest = dataclasses.replace(source.read_manifest(), count=0)  # the model whose embeddings move
    target = open_store(settings.with_overrides(vector_store=target_kind), catalog)
    with target.write_lock.holding("store migration", progress):
        copied, missing = _copy(catalog, manifest, target, progress, cancel)
    env_path = env_file if env_file is not None else Path.cwd() / ".env"
    set_env_value(env_path, STORE_VARIABLE, target_kind)
    overridden = os.environ.get(STORE_VARIABLE, target_kind) != target_kind
    log.info("Migrated %d vectors from %s to %s", copied, source.kind, target_kind)
    return MigrationReport(source.kind, target_kind, copied, missing, str(env_path), overridden)


def _copy(
    catalog: Catalog,
    manifest: IndexManifest,
    target: VectorStore,
    progress: Progress,
    cancel: threading.Event | None,
) -> tuple[int, int]:
    """Fill a new generation of ``target`` from cached embeddings, verify it, make it current."""
    index = target.new_index(manifest)
    try:
        ids = catalog.ids()
        copied = 0
        for start in range(0, len(ids), MIGRATE_CHUNK):
            if cancel is not None and cancel.is_set():
                raise CancelledError("Migration cancelled; the store in use is unchanged.")
            cached = catalog.get_embeddings(manifest.model_key, ids[start : start + MIGRATE_CHUNK])
            chunk = [i for i in ids[start : start + MIGRATE_CHUNK] if i in cached]
            if chunk:
                index.add(chunk, np.stack([cached[i] for i in chunk]))
                copied += len(chunk)
            progress(min(start + MIGRATE_CHUNK, len(ids)), len(ids), "copying")
        if len(index) != copied:
            raise CarmatchError(
                f"The {target.kind} store holds {len(index)} vectors after copying {copied}; not switched."
            )
        target.save(index)
    except BaseException:
        discard = getattr(index, "discard", None)
        if discard is not None:
            discard()
        raise
    return copied, len(ids) - copied


def set_env_value(path: Path, name: str, value: str) -> None:
    """Set ``name=value`` in a .env file (replacing its line, or appending one), written atomically."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    kept = [line for line in lines if line.split("=", 1)[0].strip().removeprefix("export ").strip() != name]
    kept.append(f"{name}={value}")
    write_bytes(path, ("\n".join(kept) + "\n").encode())
