"""What an index records beside its vectors (the manifest) and which saved state an in-memory index matches."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from carmatch.catalog import now_iso
from carmatch.errors import ModelMismatchError

INDEX_FORMAT_VERSION = 2  # 2: dead labels (null ids) and appended segments; 1 still loads
READABLE_FORMATS = (1, 2)
REBUILD_HINT = ".venv/bin/carmatch index rebuild"


@dataclass
class IndexManifest:
    """What built an index: recorded beside it and checked on load."""

    model_key: str
    model: str
    pretrained: str
    weights_hash: str
    dim: int
    count: int = 0
    created_at: str = field(default_factory=now_iso)
    format_version: int = INDEX_FORMAT_VERSION
    space: str = "cosine"
    ef_search: int = 0  # hnswlib ef measured on this collection (carmatch.stores.tuning); 0 = not yet
    ef_recall: float = 0.0  # recall@10 it reached
    ef_count: int = 0  # live vectors when it was measured
    probes: int = 0  # cells scanned per query, measured like ef (carmatch.stores.cells); 0 = not yet
    probe_recall: float = 0.0
    probe_count: int = 0

    def refuse_other_model(self, expected_model_key: str | None, built: str) -> None:
        """ModelMismatchError when ``built`` (e.g. "The search index") was made by another model than expected."""
        if expected_model_key is not None and self.model_key != expected_model_key:
            raise ModelMismatchError(
                f"{built} was built with model {self.model} ({self.pretrained}, weights "
                f"{self.weights_hash[:12]}), but the active model is {expected_model_key}. "
                f"Embeddings from different models cannot be compared. Rebuild the index: {REBUILD_HINT}"
            )


@dataclass
class SavedAs:
    """Which saved state an in-memory index matches: what a small save appends a segment to."""

    folder: Path  # the generation folder
    pointer: str  # what CURRENT says for this state: "gen-…" or "gen-…/N" (N segments appended)
    segments: int
    labels: int  # labels the saved state holds
    alive: np.ndarray  # which of them were live
    changed_rows: int  # rows added or removed by the segments since the generation was written
    base_labels: int  # labels the generation was written with
