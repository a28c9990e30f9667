"""Cached image embeddings, one vector per (image, model key)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from carmatch.catalog.connection import CatalogBase


class EmbeddingsMixin(CatalogBase):
    """Queries on the ``embeddings`` table."""

    # -- embeddings -------------------------------------------------------------------------
    def put_embeddings(self, model_key: str, image_ids: Sequence[str], vectors: np.ndarray) -> None:
        """Cache embeddings of images for one model (atomically, all or none)."""
        if len(image_ids) != len(vectors):
            raise ValueError("image_ids and vectors differ in length")
        rows = [(i, model_key, np.asarray(v, dtype=np.float32).tobytes()) for i, v in zip(image_ids, vectors)]
        with self._transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO embeddings (image_id, model_key, vector) VALUES (?,?,?)", rows)

    def get_embeddings(self, model_key: str, image_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached embeddings for those images that have one under ``model_key``."""
        out: dict[str, np.ndarray] = {}
        ids = list(image_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._execute(
                f"SELECT image_id, vector FROM embeddings WHERE model_key=? AND image_id IN ({marks})",
                [model_key, *chunk],
            ):
                out[row[0]] = np.frombuffer(row[1], dtype=np.float32)
        return out

    def embedded_ids(self, model_key: str) -> set[str]:
        """Ids of live images with a cached embedding under ``model_key``."""
        rows = self._execute(
            "SELECT e.image_id FROM embeddings e JOIN images i ON i.id=e.image_id"
            " WHERE e.model_key=? AND i.deleted_at IS NULL",
            (model_key,),
        )
        return {r[0] for r in rows}
