"""The Ray engine on the driver: what to send to the cluster, and committing what comes back.

``carmatch ingest SOURCE --engine ray`` and ``index rebuild`` / model activation with the ray engine
run here. The driver lists the files and looks each up in the catalog (a file recorded unchanged with
an embedding for the model is not sent again: a rerun resumes); the rest go through
:func:`carmatch.ingest.ray_engine.embed_files`, and every batch that comes back is committed on the
driver like a local batch: catalog rows and cached embeddings first, then the index, all under the
index write lock (:class:`RayIngestor` is an :class:`~carmatch.ingest.pipeline.Ingestor` whose
embedding step runs on the cluster, so locking, the location rules, caption CSVs, the final sync and
the save are the local ones). The index is saved once at the end, so a driver killed mid-run leaves
the previous index serving; what it had committed is skipped by the rerun.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from carmatch.catalog import Catalog
from carmatch.config import Settings
from carmatch.embedding.embedder import Embedder
from carmatch.errors import CancelledError
from carmatch.ingest.file_records import FoundFile, ImageFacts
from carmatch.ingest.pipeline import Ingestor, IngestReport, Limits
from carmatch.ingest.ray_engine import FileRow, RayPlan, connect, embed_files, make_plan
from carmatch.ingest.rebuild import EmbedMissing, missing_ids
from carmatch.locations import s3_uri_of
from carmatch.progress import Progress, no_progress
from carmatch.stores.store import SearchIndex, VectorStore

log = logging.getLogger(__name__)

LOOKUP_PROGRESS_FILES = 5_000  # files looked up in the catalog between two progress reports
RAY_ROUND_OBJECTS = 50_000  # S3 objects downloaded, then embedded as one cluster job (each job loads the models)


def ray_plan(settings: Settings, embedder: Embedder) -> RayPlan:
    """Join the cluster (RAY_ADDRESS, else a local Ray) and plan a run for ``embedder``'s model on it."""
    ray = connect(settings.ray_address)
    return make_plan(settings, embedder, dict(ray.cluster_resources()))


class RayIngestor(Ingestor):
    """An Ingestor whose read, decode and embed steps run on a Ray cluster; commits stay on the driver."""

    def __init__(
        self,
        catalog: Catalog,
        embedder: Embedder,
        store: VectorStore,
        settings: Settings,
        limits: Limits = Limits(),
    ):
        super().__init__(catalog, embedder, store, settings.ray_batch_size, limits)
        self.settings = settings

    def _pipeline(
        self,
        paths: list[Path],
        root: Path | None,
        index: SearchIndex,
        report: IngestReport,
        progress: Progress,
        cancel: threading.Event | None,
    ) -> None:
        """Look the files up here, embed the new ones on the cluster, commit each batch as it returns."""
        if not paths:
            return
        model_key = self.embedder.model_key
        embedded = self.catalog.embedded_ids(model_key)
        todo: list[tuple[Path, FoundFile]] = []  # each file as given, and as found
        for n, path in enumerate(paths, 1):
            found = self.files.lookup(path, root, report)
            if found is not None and (found.known is None or found.known not in embedded):
                todo.append((path, found))
            if n % LOOKUP_PROGRESS_FILES == 0:  # a million files take minutes to look up: say so
                progress(n, len(paths), "checking")
        done = len(paths) - len(todo)
        progress(done, len(paths), "ingesting")
        if not todo:
            return
        home = self.settings.files_home
        files = [FileRow(n, str(f.resolved), s3_uri_of(f.resolved, home) or "") for n, (_, f) in enumerate(todo)]
        queued: set[str] = set()
        for batch in embed_files(files, ray_plan(self.settings, self.embedder), cancel):
            ids, rows = [], []
            for i, row in enumerate(batch["row"]):
                path, found = todo[int(row)]
                image_id = found.known
                if batch["error"][i]:
                    report.skipped.append((str(path), str(batch["error"][i])))
                    continue
                if image_id is None:
                    facts = ImageFacts(
                        str(batch["sha256"][i]),
                        int(batch["width"][i]),
                        int(batch["height"][i]),
                        str(batch["format"][i]),
                        int(batch["size_bytes"][i]),
                    )
                    image_id = self.files.record(found, root, facts, report)
                if image_id is None or image_id in embedded or image_id in queued:
                    continue
                ids.append(image_id)
                rows.append(i)
                queued.add(image_id)
            if ids:
                vectors = np.ascontiguousarray(batch["vector"][rows], dtype=np.float32)
                self.catalog.put_embeddings(model_key, ids, vectors)
                index.add(ids, vectors)
                report.embedded += len(ids)
            done += len(batch["row"])
            progress(done, len(paths), "ingesting")
            if cancel is not None and cancel.is_set():
                raise CancelledError("cancelled")


def ray_embed_missing(settings: Settings) -> EmbedMissing:
    """:func:`carmatch.ingest.rebuild.embed_missing` on the cluster: embeds every live image the model lacks."""

    def embed(
        catalog: Catalog,
        embedder: Embedder,
        batch_size: int = 32,
        progress: Progress = no_progress,
        cancel: threading.Event | None = None,
        limits: Limits = Limits(),
    ) -> tuple[int, list[tuple[str, str]]]:
        todo = missing_ids(catalog, embedder.model_key)
        if not todo:
            return 0, []
        records = catalog.get_many(todo)
        home = settings.files_home
        files = [FileRow(n, records[i].path, s3_uri_of(records[i].path, home) or "") for n, i in enumerate(todo)]
        run_settings = settings.with_overrides(max_image_bytes=limits.max_bytes, max_image_pixels=limits.max_pixels)
        failures: list[tuple[str, str]] = []
        done = 0
        progress(0, len(todo), "embedding")
        for batch in embed_files(files, ray_plan(run_settings, embedder), cancel):
            ids, rows = [], []
            for i, row in enumerate(batch["row"]):
                image_id = todo[int(row)]
                if batch["error"][i]:
                    failures.append((image_id, f"{records[image_id].path}: {batch['error'][i]}"))
                else:
                    ids.append(image_id)
                    rows.append(i)
            if ids:
                catalog.put_embeddings(embedder.model_key, ids, np.ascontiguousarray(batch["vector"][rows]))
            done += len(batch["row"])
            progress(done, len(todo), "embedding")
            if cancel is not None and cancel.is_set():
                raise CancelledError("Rebuild cancelled; the previous index is still serving.")
        return done - len(failures), failures

    return embed


def missing_embedder(engine: str, settings: Settings) -> EmbedMissing | None:
    """What encodes a rebuild's missing embeddings for ``engine``: None for local (the default loop)."""
    return ray_embed_missing(settings) if engine == "ray" else None
