"""Runtime: the settings, catalog, model and index of one carmatch home, wired together.

The CLI and the app each hold one Runtime. The model loads lazily (so the app starts with no
weights and says what is missing) and the index is reloaded whenever a rebuild swaps in a new
generation, so a long-lived app always answers from the current one.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carmatch.catalog import Catalog
from carmatch.catalog.faults import check_home
from carmatch.config import CLI, Settings
from carmatch.embedding.embedder import Embedder, ModelSpec
from carmatch.embedding.loading import base_spec, load_embedder
from carmatch.errors import CarmatchError, EmptyCollectionError, IndexMissingError
from carmatch.images import ImageSource
from carmatch.ingest.pipeline import Ingestor, Limits
from carmatch.locations import checkpoint_file, missing_files, missing_files_problem
from carmatch.progress import Progress, no_progress
from carmatch.search.searcher import DEFAULT_IMAGE_WEIGHT, Searcher, SearchResponse
from carmatch.space.persistence import Persister, describe_persist_folder
from carmatch.stores.opening import open_store
from carmatch.stores.store import SearchIndex, VectorStore

log = logging.getLogger(__name__)

ACTIVE_MODEL_KEY = "active_model"


@dataclass(frozen=True)
class ActiveModel:
    """The model searches use: the base model from settings or a registered fine-tuned run."""

    spec: ModelSpec
    run_id: str | None = None  # None for the base model


class Runtime:
    """One carmatch home: catalog, index store, and the lazily loaded active model."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None):
        self.settings = settings
        check_home(settings.home)  # a file, or a folder that cannot be created: one StorageError that says so
        self.catalog = Catalog(settings.db_path, check=True)  # damaged pages: refused, the newest good backup named
        self.store: VectorStore = open_store(settings, self.catalog)  # CARMATCH_VECTOR_STORE: hnswlib or milvus
        self._lock = threading.RLock()
        self._embedder = embedder
        self._embedder_error: CarmatchError | None = None  # a failed load, remembered until retry_model
        self._model_lock = threading.Lock()  # held while the model loads
        self._state_lock = threading.Lock()  # guards _embedder, _embedder_error and _loader; held briefly
        self._loader: threading.Thread | None = None
        self._background_export = False  # the app: a checkpoint new to the model cache answers before its export
        self._index: SearchIndex | None = None
        self._index_generation: str | None = None
        self._installing: str | None = None  # model key whose index is being built for a swap
        self._seen_active = self.active_model().spec  # the active-model record last acted on (see _follow_active)
        self.persister: Persister | None = None  # the app's catalog snapshots into CARMATCH_PERSIST_DIR

    # -- model ------------------------------------------------------------------------------
    def active_model(self) -> ActiveModel:
        """The model that should answer searches (a registered run, else the settings' model)."""
        raw = self.catalog.get_meta(ACTIVE_MODEL_KEY)
        if raw:
            try:
                data = json.loads(raw)
                pretrained = data["pretrained"]
                if data.get("run_id") and not Path(pretrained).exists():  # a home moved since the activation
                    pretrained = str(checkpoint_file(pretrained, self.settings.files_home) or pretrained)
                return ActiveModel(ModelSpec(data["name"], pretrained), data.get("run_id"))
            except (ValueError, KeyError):
                log.warning("Ignoring unreadable active-model record %r", raw)
        return ActiveModel(base_spec(self.settings))

    def set_active_model(self, active: ActiveModel | None) -> None:
        """Record which model answers searches (None = the settings' base model)."""
        if active is None:
            self.catalog.set_meta(ACTIVE_MODEL_KEY, None)
        else:
            self.catalog.set_meta(
                ACTIVE_MODEL_KEY,
                json.dumps({"name": active.spec.name, "pretrained": active.spec.pretrained, "run_id": active.run_id}),
            )

    @property
    def embedder(self) -> Embedder:
        """The active CLIP model, loaded on first use; a failed load is remembered and raised again at once."""
        loaded = self._embedder
        if loaded is not None:
            return loaded
        # Lock order: _lock, then _model_lock, then _state_lock; a load never waits for _lock.
        with self._model_lock:  # a second caller waits for a load in progress instead of starting another
            with self._state_lock:
                if self._embedder is not None:
                    return self._embedder
                if self._embedder_error is not None:
                    raise self._embedder_error
            spec = self.active_model().spec
            try:
                embedder = self._load(spec)
            except CarmatchError as exc:
                with self._state_lock:
                    self._embedder_error = exc
                raise
            with self._state_lock:
                if self._embedder is None:  # a model swapped in meanwhile wins
                    self._embedder, self._seen_active = embedder, spec
                return self._embedder

    def _load(self, spec: ModelSpec) -> Embedder:
        """Load the model ``spec`` names: Titan on Bedrock for ``bedrock/...``, else open_clip."""
        return load_embedder(spec, self.settings, background_export=self._background_export)

    def _follow_active(self) -> None:
        """Switch models when another process (``model activate``) changed the active model.

        Cheap: the active-model record is read only when CURRENT names a generation this runtime has
        not loaded. The old model and its in-memory index keep answering until the new model is
        loaded; a model that fails to load is logged once and the old one keeps serving.
        """
        loaded = self._embedder
        if loaded is None or self._installing is not None:
            return
        if self.store.current_generation() == self._index_generation:
            return
        spec = self.active_model().spec
        if spec == self._seen_active or not self._model_lock.acquire(blocking=False):
            return  # unchanged, or another search is switching (or loading) right now
        try:
            self._seen_active = spec
            embedder = self._load(spec)
        except CarmatchError as exc:
            log.error(
                "The newly activated model %s could not be loaded; the previous one keeps answering: %s", spec.name, exc
            )
            return
        finally:
            self._model_lock.release()
        with self._lock:
            with self._state_lock:
                if self._embedder is not loaded:
                    return  # swapped meanwhile in this process
                self._embedder = embedder
            self._index, self._index_generation = None, None
        log.info("Switched to the newly activated model %s", embedder.model_key)

    def start_loading(self) -> threading.Thread | None:
        """Load the active model in a background thread (app start-up); None when nothing is left to load."""
        with self._state_lock:
            if self._embedder is not None or self._embedder_error is not None:
                return None
            if self._loader is not None and self._loader.is_alive():
                return self._loader
            self._background_export = True  # a long-lived process: first answers need not wait for the export
            self._loader = threading.Thread(target=self._load_quietly, name="carmatch-model-load", daemon=True)
            self._loader.start()
            return self._loader

    def _load_quietly(self) -> None:
        try:
            _ = self.embedder
        except CarmatchError as exc:  # remembered; logged here once, as no caller sees it (later uses re-raise it)
            log.error("The CLIP model could not be loaded: %s", exc)

    def model_error(self) -> CarmatchError | None:
        """Why the model could not be loaded, when the last attempt failed (never triggers a load)."""
        return self._embedder_error

    def model_loading(self) -> bool:
        """True while the model is being loaded."""
        return self._embedder is None and self._model_lock.locked()

    def retry_model(self) -> Embedder:
        """Forget a failed load and try again now (an admin fixed the weights or the network)."""
        with self._model_lock:  # a load in progress finishes first
            with self._state_lock:
                self._embedder_error = None
        return self.embedder

    def embedder_if_loaded(self) -> Embedder | None:
        """The model if it is already loaded (never triggers a load)."""
        return self._embedder

    def swap_model(self, embedder: Embedder, active: ActiveModel | None) -> None:
        """Switch to another model whose index has already been saved as current."""
        with self._lock:
            self.set_active_model(active)
            self._seen_active = self.active_model().spec
            with self._state_lock:
                self._embedder = embedder
                self._embedder_error = None
            self._index = None
            self._index_generation = None

    def install_model(
        self,
        embedder: Embedder,
        active: ActiveModel | None,
        build: Callable[[], object],
        progress: Progress = no_progress,
    ) -> None:
        """Run ``build`` (which saves the new model's index as current), then swap models.

        Build and swap happen under the index write lock, so no upload or bulk delete can save an
        index between them: one that started before waits for them and then writes with the new
        model; one that was already writing finishes first, and ``build`` includes its images.
        Searches keep being answered during ``build``: until the swap, :meth:`index` keeps serving
        the old in-memory index whenever the newly saved one belongs to the model being installed.
        """
        with self.store.write_lock.holding("model activation", progress):  # a wait for another process is reported
            with self._lock:
                try:
                    self.index()  # hold the serving index in memory so searches can use it during the build
                except CarmatchError:
                    pass  # nothing usable is serving now (no index, or another model's): nothing to keep
                self._installing = embedder.model_key
            try:
                build()
                self.swap_model(embedder, active)
            finally:
                with self._lock:
                    self._installing = None

    # -- index ------------------------------------------------------------------------------
    def index(self) -> SearchIndex:
        """The current index for the active model, reloaded when a new generation was saved."""
        with self._lock:
            generation = self.store.current_generation()
            if generation is None:
                if self.catalog.count() == 0:
                    raise EmptyCollectionError(
                        f"The collection is empty: add images with `{CLI} ingest DIR` "
                        "(or upload them in the Dataset tab)."
                    )
                raise IndexMissingError(f"No search index yet. Build it: {CLI} index rebuild")
            if self._index is None or generation != self._index_generation:
                if self._index is not None and self.store.read_manifest().model_key != self.embedder.model_key:
                    return self._index  # another model's index is saved but not swapped in yet (here or elsewhere)
                self._index = self.store.load(self.embedder.model_key)
                self._index_generation = generation
            return self._index

    def searcher(self) -> Searcher:
        """A Searcher over the active model and current index (read together, never mid-swap)."""
        self._follow_active()
        with self._lock:
            embedder, index = self.embedder, self.index()
        return Searcher(embedder, index, self.catalog, self.settings.max_image_bytes, self.settings.max_image_pixels)

    def search(
        self,
        text: str | None = None,
        image: ImageSource | None = None,
        k: int = 12,
        image_weight: float = DEFAULT_IMAGE_WEIGHT,
        where: dict[str, str] | None = None,
    ) -> SearchResponse:
        """Search the collection (see Searcher.search)."""
        return self.searcher().search(text=text, image=image, k=k, image_weight=image_weight, where=where)

    def ingestor(self) -> Ingestor:
        """An Ingestor writing to this home with the active model.

        Get it while holding ``store.write_lock`` when a model swap may run meanwhile; an Ingestor
        whose model is no longer the index's refuses to write (ModelMismatchError).
        """
        limits = Limits(self.settings.max_image_bytes, self.settings.max_image_pixels)
        return Ingestor(self.catalog, self.embedder, self.store, self.settings.batch_size, limits)

    def bulk_ingestor(self) -> Ingestor:
        """The Ingestor of a folder or S3 ingest: on a Ray cluster when CARMATCH_ENGINE=ray, else :meth:`ingestor`."""
        if self.settings.engine != "ray":
            return self.ingestor()
        from carmatch.ingest.ray_ingest import RayIngestor

        limits = Limits(self.settings.max_image_bytes, self.settings.max_image_pixels)
        return RayIngestor(self.catalog, self.embedder, self.store, self.settings, limits)

    # -- status -----------------------------------------------------------------------------
    def info(self, load_model: bool = True, check_files: bool = False) -> dict[str, Any]:
        """Model, device, image count, index size and data location, for `carmatch info` and the UI.

        ``problems`` lists what stops or degrades search, each with the command that fixes it, a
        model that failed to load first. ``load_model=False`` never waits for the model: its state
        (``loaded``, ``loading``, ``failed``, ``not loaded``) is reported as it is.
        """
        active = self.active_model()
        info: dict[str, Any] = {
            "home": str(self.settings.home.resolve()),
            "catalog": str(self.settings.db_path.resolve()),
            "model": active.spec.name,
            "pretrained": active.spec.pretrained,
            "active_run": active.run_id or "base",
            "device": None,  # known once the model is loaded
            "model_state": "not loaded",
            "images": self.catalog.count(),
            "index_size": None,
            "index_model": None,
            "problems": [],
            **self.store.describe(),  # which vector store, where
            **self._persistence(),
        }
        if load_model:
            try:
                _ = self.embedder
            except CarmatchError:
                pass  # reported below from model_error()
        loaded, error = self.embedder_if_loaded(), self.model_error()
        if loaded is not None:
            info.update(device=loaded.device, model_key=loaded.model_key, model_state="loaded")
        elif error is not None:
            info.update(model_state="failed")
            info["problems"].append(str(error))
        elif self.model_loading():
            info.update(model_state="loading")
        info["problems"].extend(self._index_problems(info, loaded))
        if check_files:
            missing = missing_files(self.catalog)
            info["missing_files"] = len(missing)
            if missing:
                info["problems"].append(missing_files_problem(missing, self.settings.files_home))
        return info

    def _persistence(self) -> dict[str, object]:
        """Where curated work lasts and when it was last saved there (nothing when no persist folder is set)."""
        if self.persister is not None:
            return self.persister.describe()
        persist = self.settings.persist_folder
        return describe_persist_folder(persist) if persist is not None else {}

    def _index_problems(self, info: dict[str, Any], loaded: Embedder | None) -> list[str]:
        """What is wrong with the index: none yet, another model's, or behind the catalog."""
        problems: list[str] = []
        try:
            exists = self.store.exists()
            manifest = self.store.read_manifest() if exists else None
        except CarmatchError as exc:  # an unreadable index, or a Milvus server out of reach
            return [str(exc)]
        if manifest is not None:
            info["index_size"] = manifest.count
            info["index_model"] = manifest.model_key
            if loaded is not None and manifest.model_key != loaded.model_key:
                problems.append(f"The index was built by another model; rebuild it: {CLI} index rebuild")
            elif manifest.count < info["images"]:
                problems.append(
                    f"The index holds {manifest.count} of the {info['images']} images (an ingest was interrupted); "
                    f"catch up: {CLI} index rebuild (or run the same ingest again)"
                )
        elif info["images"]:
            problems.append(f"No search index yet; build it: {CLI} index rebuild")
        if not info["images"]:
            problems.append(f"The collection is empty; add images: {CLI} ingest DIR")
        return problems

    def catch_up_index(self, progress: Progress = no_progress) -> bool:
        """Build the index from cached embeddings when the catalog has images and no index (a restored catalog).

        Returns True when it built one. Images whose embedding is not cached are embedded.
        """
        if self.catalog.count() == 0 or self.store.current_generation() is not None:
            return False
        from carmatch.ingest.rebuild import rebuild_index

        embedder = self.embedder
        limits = Limits(self.settings.max_image_bytes, self.settings.max_image_pixels)
        _, failures = rebuild_index(
            self.catalog, embedder, self.store, self.settings.batch_size, progress, None, limits
        )
        log.info("Index rebuilt from the catalog's cached embeddings (%d images skipped)", len(failures))
        with self._lock:
            self._index, self._index_generation = None, None
        return True

    def start_index_catch_up(self) -> threading.Thread:
        """:meth:`catch_up_index` in a background thread (app start-up after a restore); failures are logged."""

        def run() -> None:
            try:
                self.catch_up_index()
            except CarmatchError as exc:
                log.error("The index could not be rebuilt after the restore: %s", exc)

        thread = threading.Thread(target=run, name="carmatch-index-catch-up", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Write the last snapshot (when persisting) and release the catalog connection."""
        if self.persister is not None:
            self.persister.stop()
        self.catalog.close()
