"""Registered models in the catalog: the ``models`` table (fine-tuned runs and Titan customizations)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from carmatch.catalog.connection import CatalogBase
from carmatch.catalog.schema import now_iso


@dataclass
class ModelRecord:
    """One registered model: a local or SageMaker fine-tune, or a Titan customization job."""

    id: str
    created_at: str
    kind: str  # "local" | "sagemaker" | "titan"
    base_model: str
    base_pretrained: str
    checkpoint: str | None
    status: str
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ModelRecord:
        """Build from a row of the models table."""
        return cls(
            id=row["id"],
            created_at=row["created_at"],
            kind=row["kind"],
            base_model=row["base_model"],
            base_pretrained=row["base_pretrained"],
            checkpoint=row["checkpoint"],
            status=row["status"],
            config=json.loads(row["config"]) if row["config"] else {},
            metrics=json.loads(row["metrics"]) if row["metrics"] else {},
        )

    def to_dict(self, active: bool = False) -> dict[str, Any]:
        """JSON-friendly view (for ``model list --json`` and the app)."""
        return {
            "id": self.id,
            "created_at": self.created_at,
            "kind": self.kind,
            "base_model": self.base_model,
            "base_pretrained": self.base_pretrained,
            "checkpoint": self.checkpoint,
            "status": self.status,
            "metrics": self.metrics,
            "config": self.config,
            "active": active,
        }


class ModelsMixin(CatalogBase):
    """Queries on the ``models`` table."""

    def save_model(
        self,
        model_id: str,
        kind: str,
        base_model: str,
        base_pretrained: str,
        status: str,
        checkpoint: str | None = None,
        config: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> ModelRecord:
        """Insert or replace one model row, keeping its created_at when it exists; returns the stored row."""
        with self._transaction() as conn:
            row = conn.execute("SELECT created_at FROM models WHERE id=?", (model_id,)).fetchone()
            created = row["created_at"] if row else now_iso()
            conn.execute(
                "INSERT OR REPLACE INTO models (id, created_at, kind, base_model, base_pretrained, checkpoint,"
                " config, metrics, status) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    model_id,
                    created,
                    kind,
                    base_model,
                    base_pretrained,
                    checkpoint,
                    json.dumps(config or {}, default=str),
                    json.dumps(metrics or {}, default=str),
                    status,
                ),
            )
            stored = conn.execute("SELECT * FROM models WHERE id=?", (model_id,)).fetchone()
        return ModelRecord.from_row(stored)

    def find_model(self, model_id: str) -> ModelRecord | None:
        """One registered model by id, or None when there is none."""
        rows = self._execute("SELECT * FROM models WHERE id=?", (model_id,))
        return ModelRecord.from_row(rows[0]) if rows else None

    def models(self) -> list[ModelRecord]:
        """Every registered model, newest first."""
        return [
            ModelRecord.from_row(r) for r in self._execute("SELECT * FROM models ORDER BY created_at DESC, id DESC")
        ]

    def recent_model_ids(self, limit: int = 5) -> list[str]:
        """Ids of the newest registered models (for "did you mean" hints)."""
        return [str(r["id"]) for r in self._execute("SELECT id FROM models ORDER BY created_at DESC LIMIT ?", (limit,))]
