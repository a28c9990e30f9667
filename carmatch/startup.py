"""Start-up of a long-lived process (the app): open the configured home, or say why it cannot be opened.

With CARMATCH_PERSIST_DIR the home is first restored from the persist folder's newest catalog snapshot
and then snapshotted back into it (:mod:`carmatch.space.persistence`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from carmatch.catalog.faults import environment_fault
from carmatch.config import Settings, load_settings
from carmatch.errors import CarmatchError, StorageError
from carmatch.runtime import Runtime
from carmatch.space.persistence import Persister, claim, restore_catalog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartupFault:
    """Why the configured home could not be opened at start, and the settings when they could be read."""

    error: CarmatchError
    settings: Settings | None = None


def open_runtime(load: Callable[[], Settings] = load_settings) -> Runtime | StartupFault:
    """The Runtime of the configured home, or the fault that stops it opening (logged): the app shows it.

    A corrupt or truncated catalog, a catalog path that is a folder, a CARMATCH_HOME that is a file
    or cannot be created, invalid settings: each is one clear error, never a traceback.
    """
    settings: Settings | None = None
    try:
        settings = load()
        return open_persisted(settings)
    except CarmatchError as exc:
        error = exc
    except (OSError, sqlite3.Error) as exc:  # a fault not phrased where it happened
        home = settings.home if settings is not None else None
        error = environment_fault(exc, home) or StorageError(f"Cannot open the carmatch home: {exc}")
        error.__cause__ = exc
    log.error("carmatch cannot open its data: %s", error)
    return StartupFault(error, settings)


def open_persisted(settings: Settings) -> Runtime:
    """The app's Runtime: with CARMATCH_PERSIST_DIR, claimed, restored from its newest snapshot and snapshotting.

    A second app on the same persist folder is refused (StorageError); a restored catalog gets its index
    back from the cached embeddings once the model has loaded (:meth:`Runtime.start_index_catch_up`).
    """
    persist = settings.persist_folder
    if persist is None:
        return Runtime(settings)
    claim(persist)
    restored = restore_catalog(persist, settings.db_path)
    runtime = Runtime(settings)
    runtime.persister = Persister(runtime.catalog, persist, settings.persist_seconds)
    runtime.persister.start()
    if restored is not None:
        log.info("Curated work restored from %s", restored)
    return runtime
