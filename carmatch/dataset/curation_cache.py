"""The curation cache: suspects, duplicate groups and the map, kept per model and caption version.

Files live in ``<home>/curation/`` and are written atomically (:mod:`carmatch.atomic`), so a crash
leaves the previous result. A result names the *model key* it was computed with (architecture +
weights hash) and the *version* of its input (a hash of every captioned image's id and caption
version, or of the embedded ids): when either changes, the cached result is stale and is computed
again. Caption vectors are cached too, per model, in chunks as they are encoded, so an interrupted
computation resumes where it stopped and a refresh after a few edits encodes only those captions.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from carmatch.atomic import atomic_open, write_bytes
from carmatch.catalog import ImageRecord
from carmatch.errors import CancelledError
from carmatch.progress import Progress, no_progress

log = logging.getLogger(__name__)

CACHE_FOLDER = "curation"
TEXT_CHUNK = 256  # captions encoded (and saved) at a time


class TextEncoder(Protocol):
    """What curation needs of a model: the identity of its space and its text tower (an Embedder fits)."""

    @property
    def model_key(self) -> str: ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def cache_dir(home: Path) -> Path:
    """The curation cache folder of a carmatch home."""
    return Path(home) / CACHE_FOLDER


def _slug(model_key: str) -> str:
    short = re.sub(r"[^A-Za-z0-9._-]+", "_", model_key)[:40]
    return f"{short}-{hashlib.sha256(model_key.encode()).hexdigest()[:10]}"


def fingerprint(parts: Iterable[str]) -> str:
    """A short hash of some strings in order: the version of a computation's input."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def caption_version(records: Sequence[ImageRecord]) -> str:
    """The version of a set of captions: changes when any caption is edited, added or removed."""
    return fingerprint(f"{r.id}:{r.version}" for r in records)


def result_path(home: Path, kind: str, model_key: str) -> Path:
    """Where one kind of result (``suspects``, ``duplicates``, ``map``) for one model is kept."""
    return cache_dir(home) / f"{kind}-{_slug(model_key)}.json"


def load_result(home: Path, kind: str, model_key: str, version: str | None) -> Any | None:
    """The cached result when it was computed for this model and input version (None: any version), else None."""
    path = result_path(home, kind, model_key)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("Ignoring unreadable curation cache %s (%s)", path, exc)
        return None
    if not isinstance(data, dict) or data.get("model_key") != model_key:
        return None
    if version is not None and data.get("version") != version:
        return None
    return data.get("result")


def save_result(home: Path, kind: str, model_key: str, version: str, result: Any) -> None:
    """Keep a result for this model and input version (atomically)."""
    path = result_path(home, kind, model_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump({"model_key": model_key, "version": version, "result": result}, handle)


def caption_vectors(
    home: Path,
    encoder: TextEncoder,
    records: Sequence[ImageRecord],
    progress: Progress = no_progress,
    cancelled: Callable[[], bool] = lambda: False,
) -> np.ndarray:
    """Unit text vectors of each record's caption, in order; reuses and extends the per-model cache."""
    path = cache_dir(home) / f"captions-{_slug(encoder.model_key)}.npz"
    known: dict[str, np.ndarray] = {}
    if path.exists():
        try:
            with np.load(path) as data:
                known = {str(k): v for k, v in zip(data["keys"], data["vectors"])}
        except (OSError, ValueError, KeyError) as exc:
            log.warning("Ignoring unreadable caption vectors %s (%s)", path, exc)
    keys = [f"{r.id}:{r.version}" for r in records]
    todo = [i for i, key in enumerate(keys) if key not in known]
    for start in range(0, len(todo), TEXT_CHUNK):
        if cancelled():
            break
        chunk = todo[start : start + TEXT_CHUNK]
        vectors = np.asarray(encoder.encode_texts([str(records[i].caption) for i in chunk]), dtype=np.float32)
        known.update({keys[i]: v for i, v in zip(chunk, vectors)})
        _save_vectors(path, keys, known)
        progress(min(start + TEXT_CHUNK, len(todo)), len(todo), "encoding captions")
    missing = [key for key in keys if key not in known]
    if missing:
        raise CancelledError(f"Stopped after encoding {len(todo) - len(missing)} of {len(todo)} captions")
    return np.stack([known[key] for key in keys]) if keys else np.zeros((0, 0), dtype=np.float32)


def _save_vectors(path: Path, keys: Sequence[str], known: dict[str, np.ndarray]) -> None:
    """Keep the vectors of the current captions (older versions dropped), atomically."""
    kept = [key for key in keys if key in known]
    buffer = io.BytesIO()
    np.savez(buffer, keys=np.array(kept), vectors=np.stack([known[k] for k in kept]))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, buffer.getvalue())
