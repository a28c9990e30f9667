"""Model registry: fine-tuned runs in the catalog's ``models`` table, and activating one (or the base model).

Activating re-embeds the collection with the chosen model (cached embeddings for that model are
reused), builds the new index *beside* the live one and swaps it in atomically; searches keep being
answered from the old index meanwhile, and a failed or cancelled rebuild leaves it serving.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carmatch.catalog import Catalog
from carmatch.catalog.models import ModelRecord
from carmatch.config import CLI
from carmatch.embedding.embedder import ModelSpec
from carmatch.embedding.loading import base_spec, load_embedder
from carmatch.embedding.titan_embedder import is_bedrock_model
from carmatch.errors import BusyError, CarmatchError, InvalidInputError, NotFoundError
from carmatch.ingest.pipeline import Limits
from carmatch.ingest.ray_ingest import missing_embedder
from carmatch.ingest.rebuild import embed_missing, rebuild_index
from carmatch.locations import checkpoint_file
from carmatch.progress import Progress, no_progress

if TYPE_CHECKING:
    from carmatch.runtime import Runtime

log = logging.getLogger(__name__)

BASE = "base"
MODEL_STATUSES = ("running", "ready", "cancelled", "failed", "submitted")
TRAINING_LOCK_FILE = ".training.lock"  # in runs_dir: held (flock) by the process training in this home
INTERRUPTED = "interrupted — resume or delete"  # shown for a local run "running" that no process trains
PROVISIONED_KEY = "provisionedModelArn"  # where a Titan job's record keeps its provisioned throughput (titan provision)
_REBUILD_LOCK = threading.Lock()


def register_model(
    catalog: Catalog,
    run_id: str,
    kind: str,
    base_model: str,
    base_pretrained: str,
    status: str,
    checkpoint: str | None = None,
    config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> ModelRecord:
    """Insert or update one model row (created_at is kept on update)."""
    if status not in MODEL_STATUSES:
        raise InvalidInputError(f"Unknown model status {status!r}; use one of {MODEL_STATUSES}")
    return catalog.save_model(run_id, kind, base_model, base_pretrained, status, checkpoint, config, metrics)


def set_status(catalog: Catalog, run_id: str, status: str, metrics: dict[str, Any] | None = None) -> None:
    """Change a model's status (and optionally its metrics)."""
    record = get_model(catalog, run_id)
    register_model(
        catalog,
        run_id,
        record.kind,
        record.base_model,
        record.base_pretrained,
        status,
        record.checkpoint,
        record.config,
        metrics if metrics is not None else record.metrics,
    )


def get_model(catalog: Catalog, run_id: str) -> ModelRecord:
    """One registered model; NotFoundError listing the known ids when unknown."""
    record = catalog.find_model(run_id)
    if record is None:
        known = catalog.recent_model_ids(5)
        hint = f" Known runs: {', '.join(known)}." if known else " No runs are registered yet."
        raise NotFoundError(f"No model run {run_id!r}.{hint} See: .venv/bin/carmatch model list")
    return record


def list_models(catalog: Catalog) -> list[ModelRecord]:
    """Every registered model, newest first."""
    return catalog.models()


def training_alive(runs_dir: Path) -> bool:
    """True while some process (this one included) holds the training lock of the home owning ``runs_dir``."""
    try:
        import fcntl
    except ImportError:  # no fcntl (Windows): cannot tell, so never call a run interrupted
        return True
    try:
        handle = open(runs_dir / TRAINING_LOCK_FILE)  # noqa: SIM115 - closed below, lock released with it
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        return False


def model_table(runtime: Runtime) -> list[dict[str, Any]]:
    """Rows for ``model list``/the app: the base model first, then each run, with an ``active`` flag."""
    active = runtime.active_model().run_id
    base = base_spec(runtime.settings)
    rows: list[dict[str, Any]] = [
        {
            "id": BASE,
            "created_at": "",
            "kind": "base",
            "base_model": base.name,
            "base_pretrained": base.pretrained,
            "checkpoint": None,
            "status": "ready",
            "metrics": {},
            "config": {},
            "active": active is None,
        }
    ]
    rows += [record.to_dict(active=record.id == active) for record in list_models(runtime.catalog)]
    if any(row["kind"] == "local" and row["status"] == "running" for row in rows):
        if not training_alive(runtime.settings.runs_dir):  # killed mid-training: the record still says running
            for row in rows:
                if row["kind"] == "local" and row["status"] == "running":
                    row["status"] = INTERRUPTED
    return rows


def spec_for(runtime: Runtime, run_id: str) -> ModelSpec:
    """The model spec that ``run_id`` (or ``base``) names; refuses runs that cannot serve searches."""
    if run_id == BASE:
        return base_spec(runtime.settings)  # Titan (bedrock/...) or open_clip
    record = get_model(runtime.catalog, run_id)
    if record.kind == "titan":
        arn = record.config.get(PROVISIONED_KEY)
        how = (
            f"set CARMATCH_MODEL=bedrock/{arn} (its provisioned throughput) and activate base"
            if arn
            else f"Bedrock serves it only through provisioned throughput: {CLI} titan provision {run_id}, then set "
            "CARMATCH_MODEL=bedrock/<the ARN it prints> and activate base"
        )
        raise InvalidInputError(f"{run_id} is a fine-tuned Titan model, searched through Bedrock: {how}.")
    if record.status != "ready":
        raise InvalidInputError(
            f"Run {run_id} is {record.status}, not ready to activate."
            + (f" Resume it: .venv/bin/carmatch train --resume {run_id}" if record.status == "cancelled" else "")
        )
    checkpoint = checkpoint_file(record.checkpoint, runtime.settings.files_home)  # relative: under this home
    if checkpoint is None or not checkpoint.is_file():
        raise NotFoundError(f"The checkpoint of run {run_id} is missing ({record.checkpoint}); it cannot be activated.")
    return ModelSpec(record.base_model, str(checkpoint))


@dataclass
class ActivationResult:
    """What activating a model did."""

    run_id: str  # "base" for the base model
    model_key: str
    indexed: int
    rebuilt: bool
    failures: list[tuple[str, str]] = field(default_factory=list)


def activate(
    runtime: Runtime,
    run_id: str,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> ActivationResult:
    """Make ``run_id`` (or ``base``) the model answering searches, rebuilding its index beside the live one."""
    from carmatch.runtime import ActiveModel

    spec = spec_for(runtime, run_id)  # unknown or unusable runs fail here, before anything changes
    if not _REBUILD_LOCK.acquire(blocking=False):
        raise BusyError("Another model activation or index rebuild is running; wait for it to finish.")
    try:
        current = runtime.active_model()
        embedder = runtime.embedder_if_loaded()
        if embedder is None or embedder.spec != spec:
            embedder = load_embedder(spec, runtime.settings)
        if (
            current.spec == spec
            and runtime.store.exists()
            and runtime.store.read_manifest().model_key == embedder.model_key
        ):
            log.info("%s is already active and its index is current", run_id)
            return ActivationResult(run_id, embedder.model_key, runtime.store.read_manifest().count, False)
        if not runtime.store.exists():
            log.warning("No index exists; building one for %s", run_id)
        active = None if run_id == BASE else ActiveModel(spec, run_id)
        report = progress or no_progress
        settings = runtime.settings
        limits = Limits(settings.max_image_bytes, settings.max_image_pixels)
        embed = missing_embedder(settings.engine, settings) or embed_missing  # CARMATCH_ENGINE: here or on Ray
        # The slow part (encoding every image) runs while searches go on against the old index...
        embed(runtime.catalog, embedder, settings.batch_size, report, cancel, limits)
        built: dict[str, Any] = {}

        def build() -> None:  # ...then assembling from cached embeddings and the swap happen together.
            index, failures = rebuild_index(
                runtime.catalog, embedder, runtime.store, settings.batch_size, report, cancel, limits, embed
            )
            built.update(index=index, failures=failures)

        runtime.install_model(embedder, active, build, report)
        log.info("Activated %s (%s): %d images indexed", run_id, embedder.model_key, len(built["index"]))
        return ActivationResult(run_id, embedder.model_key, len(built["index"]), True, built["failures"])
    except CarmatchError:
        log.warning("Activating %s failed; the previous model and index keep serving", run_id)
        raise
    finally:
        _REBUILD_LOCK.release()


def evaluate_models(
    runtime: Runtime,
    model_ids: list[str],
    split: str = "test",
    val_fraction: float | None = None,
    test_fraction: float | None = None,
) -> dict[str, dict[str, float]]:
    """Retrieval metrics of each model (``base`` or a run id) on one split of the collection's split.

    Given fractions must match the collection's split (InvalidInputError otherwise): evaluation never
    measures on images a run trained on.
    """
    from carmatch.dataset.training_set import matching_split, split_name
    from carmatch.training.data import catalog_pairs
    from carmatch.training.evaluation import evaluate_model

    split = split_name(split, also=("all",))
    fractions = matching_split(runtime.catalog, val_fraction, test_fraction)
    specs = {model_id: spec_for(runtime, model_id) for model_id in model_ids}  # unknown ids fail before any work
    titan = [model_id for model_id, spec in specs.items() if is_bedrock_model(spec.name)]
    if titan:
        raise InvalidInputError(
            field="carmatch_model",  # the setting, not eval's --model flag
            value=specs[titan[0]].name,
            reason=f"is {specs[titan[0]].name}, Titan on Bedrock: eval scores open_clip models (base or "
            "fine-tuned runs) on this machine; set CARMATCH_MODEL to an open_clip model to evaluate",
            label="CARMATCH_MODEL",
        )
    pairs, _ = catalog_pairs(runtime.catalog, fractions.validation, fractions.test)
    chosen = [p for p in pairs if split == "all" or p.split == split]
    if len(chosen) < 2:
        raise InvalidInputError(f"The {split} split has {len(chosen)} captioned images; evaluation needs at least 2.")
    results = {}
    for model_id, spec in specs.items():
        loaded = runtime.embedder_if_loaded()
        if loaded is None or loaded.spec != spec:
            loaded = load_embedder(spec, runtime.settings)
        seen = [p for p in pairs if p.split == "train"] if split != "train" else None  # unseen = held out
        results[model_id] = evaluate_model(
            loaded.model, loaded.preprocess, loaded.tokenizer, chosen, loaded.device, seen=seen
        )
    return results
