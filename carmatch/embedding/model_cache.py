"""The model cache: what a loaded model's weights hash to, remembered by the checkpoint's (path, size, mtime).

Hashing ~600 MB of weights on every start costs seconds. The first load of a checkpoint records its
weights hash (the identity an index is built with), its vector size, context length, and which fast
inference parts were verified (ONNX towers, the torch-free tokenizer and image preprocessing). A
later load whose checkpoint and config file still have the recorded path, size and modification
time uses the record and never imports torch for a text query. Any change to those files (or to the
installed torch / open_clip) misses the cache and loads the slow way again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from carmatch.atomic import atomic_open
from carmatch.embedding.weights import PRETRAINED_NONE, ModelSpec, is_local_checkpoint
from carmatch.errors import CarmatchError

log = logging.getLogger(__name__)

MODEL_CACHE_ENV = "CARMATCH_MODEL_CACHE"  # a folder to use instead of CARMATCH_HOME/model-cache
MODEL_CACHE_DIR = "model-cache"
RECORD_VERSION = 1
VERSIONED_PACKAGES = ("torch", "open_clip_torch", "onnxruntime")
STALE_TOWERS_SECONDS = 600  # unreferenced towers younger than this may be another process's export in flight


def default_cache_dir() -> Path | None:
    """CARMATCH_MODEL_CACHE, else the home's ``model-cache`` folder; None when the settings cannot be read."""
    chosen = os.environ.get(MODEL_CACHE_ENV)
    if chosen:
        return Path(chosen).expanduser()
    from carmatch.config import load_settings

    try:
        return load_settings().home / MODEL_CACHE_DIR
    except CarmatchError as exc:
        log.debug("No model cache: %s", exc)
        return None


@dataclass(frozen=True)
class FileStamp:
    """A file as the cache knows it: its resolved path, size and modification time."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | Path) -> FileStamp | None:
        """The file's stamp now; None when it is not a readable file."""
        try:
            resolved = Path(path).expanduser().resolve()
            stat = resolved.stat()
        except OSError:
            return None
        return cls(str(resolved), stat.st_size, stat.st_mtime_ns) if resolved.is_file() else None

    def current(self) -> bool:
        """True when the file still has this path, size and modification time."""
        return FileStamp.of(self.path) == self


@dataclass
class ModelRecord:
    """What the cache remembers about one model's weights (see the module docstring)."""

    weights_hash: str
    dim: int
    context_length: int
    weights: FileStamp | None  # the checkpoint file; None for seeded random weights
    config: FileStamp | None  # the model-config JSON; None for a built-in open_clip name
    tokenizer: bool = False  # the torch-free tokenizer gives open_clip's tokens for this model
    preprocess: dict[str, Any] | None = None  # torch-free image preprocessing, when it matched the model's
    towers: str | None = None  # the verified ONNX towers' folder name
    problem: str | None = None  # why there are no ONNX towers (logged once, not retried until a change)

    def to_json(self) -> str:
        """The record as JSON."""
        return json.dumps({"version": RECORD_VERSION, **asdict(self)}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> ModelRecord | None:
        """The record in ``text``; None when it is unreadable or of another version."""
        try:
            data = json.loads(text)
            if data.pop("version", None) != RECORD_VERSION:
                return None
            for key in ("weights", "config"):
                data[key] = FileStamp(**data[key]) if data.get(key) else None
            return cls(**data)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def current(self) -> bool:
        """True when the checkpoint and config file are unchanged since the record was written."""
        return all(stamp is None or stamp.current() for stamp in (self.weights, self.config))


def package_versions() -> dict[str, str]:
    """Installed versions of the packages whose change may change a model's numbers (read without importing them)."""
    found: dict[str, str] = {}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def config_stamp(spec: ModelSpec) -> FileStamp | None:
    """The model-config JSON's stamp (None for a built-in open_clip model name)."""
    return FileStamp.of(spec.name) if spec.name.endswith(".json") else None


class ModelCache:
    """Records by model spec, and the folders of exported ONNX towers, under one folder."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _record_path(self, spec: ModelSpec) -> Path:
        pretrained = spec.pretrained
        if is_local_checkpoint(pretrained) and pretrained.lower() != PRETRAINED_NONE:
            pretrained = str(Path(pretrained).expanduser().resolve())
        name = str(Path(spec.name).expanduser().resolve()) if spec.name.endswith(".json") else spec.name
        key = json.dumps([name, pretrained, package_versions()], sort_keys=True)
        return self.folder / "records" / f"{hashlib.blake2b(key.encode(), digest_size=12).hexdigest()}.json"

    def lookup(self, spec: ModelSpec) -> ModelRecord | None:
        """The record of ``spec`` when its files are unchanged since it was written, else None."""
        try:
            text = self._record_path(spec).read_text(encoding="utf-8")
        except OSError:
            return None
        record = ModelRecord.from_json(text)
        if record is None or not record.current():
            return None
        if record.towers is not None and not (self.towers_dir(record.towers) / "towers.json").is_file():
            record.towers = None  # the towers were removed: export them again
        return record

    def remember(self, spec: ModelSpec, record: ModelRecord) -> None:
        """Write ``spec``'s record; a cache that cannot be written is logged and skipped."""
        try:
            with atomic_open(self._record_path(spec), "w", encoding="utf-8") as fh:
                fh.write(record.to_json())
        except OSError as exc:
            log.warning(
                "Could not write the model cache in %s (%s); the next start hashes the weights again", self.folder, exc
            )

    def towers_dir(self, name: str) -> Path:
        """The folder of the ONNX towers named ``name`` (``<arch>@<weights hash>``)."""
        return self.folder / "onnx" / name

    def prune(self) -> None:
        """Delete records of checkpoints that changed or are gone, and towers no remaining record names.

        Each export of a new checkpoint (a fine-tuned run, a benchmark's temporary weights) adds ~600 MB
        for ViT-B-32-256; this keeps the cache to the checkpoints that still exist.
        """
        keep: set[str] = set()
        for path in (self.folder / "records").glob("*.json"):
            try:
                record = ModelRecord.from_json(path.read_text(encoding="utf-8"))
            except OSError:
                continue
            if record is None or not record.current():
                path.unlink(missing_ok=True)
            elif record.towers:
                keep.add(record.towers)
        folders = (self.folder / "onnx").iterdir() if (self.folder / "onnx").is_dir() else iter(())
        for folder in folders:
            try:
                stale = time.time() - folder.stat().st_mtime > STALE_TOWERS_SECONDS
            except OSError:
                continue
            if folder.name not in keep and stale:
                log.info("Removing ONNX towers no checkpoint uses any more: %s", folder.name)
                shutil.rmtree(folder, ignore_errors=True)
