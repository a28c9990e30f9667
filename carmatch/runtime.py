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
from typing import Any

from carmatch.catalog import Catalog
from carmatch.config import Settings
from carmatch.errors import CarmatchError, EmptyCollectionError, IndexMissingError
from carmatch.images import ImageSource
from carmatch.search.embedder import Embedder, ModelSpec, load_clip
from carmatch.search.ingest import Ingestor, Limits
from carmatch.search.searcher import DEFAULT_IMAGE_WEIGHT, Searcher, SearchResponse
from carmatch.search.store import SearchIndex, VectorStore, open_store
from carmatch.search.titan_embedder import is_bedrock_model, load_titan

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
        settings.home.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(settings.db_path)
        self.store: VectorStore = open_store(settings, self.catalog)  # CARMATCH_VECTOR_STORE: hnswlib or milvus
        self._lock = threading.RLock()
        self._embedder = embedder
        self._embedder_error: CarmatchError | None = None
        self._index: SearchIndex | None = None
        self._index_generation: str | None = None
        self._installing: str | None = None  # model key whose index is being built for a swap

    # -- model ------------------------------------------------------------------------------
    def active_model(self) -> ActiveModel:
        """The model that should answer searches (a registered run, else the settings' model)."""
        raw = self.catalog.get_meta(ACTIVE_MODEL_KEY)
        if raw:
            try:
                data = json.loads(raw)
                return ActiveModel(ModelSpec(data["name"], data["pretrained"]), data.get("run_id"))
            except (ValueError, KeyError):
                log.warning("Ignoring unreadable active-model record %r", raw)
        return ActiveModel(ModelSpec(self.settings.model, self.settings.pretrained))

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
        """The active CLIP model, loaded on first use; raises a clear error when it cannot load."""
        with self._lock:
            if self._embedder is None:
                spec = self.active_model().spec
                try:
                    if is_bedrock_model(spec.name):  # CARMATCH_MODEL=bedrock/...: Titan on Bedrock
                        self._embedder = load_titan(spec.name, self.settings)
                    else:
                        settings = self.settings
                        self._embedder = load_clip(spec.name, spec.pretrained, settings.device, settings.offline)
                    self._embedder_error = None
                except CarmatchError as exc:
                    self._embedder_error = exc
                    raise
            return self._embedder

    def embedder_if_loaded(self) -> Embedder | None:
        """The model if it is already loaded (never triggers a load)."""
        return self._embedder

    def swap_model(self, embedder: Embedder, active: ActiveModel | None) -> None:
        """Switch to another model whose index has already been saved as current."""
        with self._lock:
            self.set_active_model(active)
            self._embedder = embedder
            self._index = None
            self._index_generation = None

    def install_model(self, embedder: Embedder, active: ActiveModel | None, build: Callable[[], object]) -> None:
        """Run ``build`` (which saves the new model's index as current), then swap models.

        Build and swap happen under the index write lock, so no upload or bulk delete can save an
        index between them: one that started before waits for them and then writes with the new
        model; one that was already writing finishes first, and ``build`` includes its images.
        Searches keep being answered during ``build``: until the swap, :meth:`index` keeps serving
        the old in-memory index whenever the newly saved one belongs to the model being installed.
        """
        with self.store.write_lock:
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
                        "The collection is empty: add images with `python -m admin ingest DIR` "
                        "(or upload them in the Dataset tab)."
                    )
                raise IndexMissingError("No search index yet. Build it: python -m admin index rebuild")
            if self._index is None or generation != self._index_generation:
                if self._index is not None and self._installing is not None:
                    if self.store.read_manifest().model_key == self._installing:
                        return self._index  # the new model's index is saved but not swapped in yet
                self._index = self.store.load(self.embedder.model_key)
                self._index_generation = generation
            return self._index

    def searcher(self) -> Searcher:
        """A Searcher over the active model and current index (read together, never mid-swap)."""
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

    # -- status -----------------------------------------------------------------------------
    def info(self, load_model: bool = True) -> dict[str, Any]:
        """Model, device, image count, index size and data location, for `admin info` and the UI."""
        active = self.active_model()
        info: dict[str, Any] = {
            "home": str(self.settings.home.resolve()),
            "catalog": str(self.settings.db_path.resolve()),
            "model": active.spec.name,
            "pretrained": active.spec.pretrained,
            "active_run": active.run_id or "base",
            "device": self.settings.device,
            "images": self.catalog.count(),
            "index_size": None,
            "index_model": None,
            "problems": [],
            **self.store.describe(),  # which vector store, where
        }
        if load_model:
            try:
                embedder = self.embedder
                info["device"] = embedder.device
                info["model_key"] = embedder.model_key
            except CarmatchError as exc:
                info["problems"].append(str(exc))
        try:
            index_exists = self.store.exists()
        except CarmatchError as exc:  # a Milvus store out of reach: say so, keep the rest of the report
            info["problems"].append(str(exc))
            index_exists = False
        if index_exists:
            try:
                manifest = self.store.read_manifest()
                info["index_size"] = manifest.count
                info["index_model"] = manifest.model_key
                loaded = self.embedder_if_loaded()
                if loaded is not None and manifest.model_key != loaded.model_key:
                    info["problems"].append(
                        "The index was built by another model; rebuild it: python -m admin index rebuild"
                    )
            except CarmatchError as exc:
                info["problems"].append(str(exc))
        elif info["images"]:
            info["problems"].append("No search index yet; build it: python -m admin index rebuild")
        if not info["images"]:
            info["problems"].append("The collection is empty; add images: python -m admin ingest DIR")
        return info

    def close(self) -> None:
        """Release the catalog connection."""
        self.catalog.close()
