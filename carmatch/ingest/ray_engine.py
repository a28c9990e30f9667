"""The Ray engine's pipeline: read, validate, decode and embed image files on a Ray cluster.

Ray Data streams the files the driver lists through two stages. CPU tasks read each file (its path,
or its S3 object when the worker cannot see the driver's copy), validate and decode it exactly as
local ingest does (:func:`carmatch.images.decode_image` at the model's draft side) and turn it into
the model's input tensor with the model's own transform; an actor pool (one model per actor, one GPU
each when the cluster has GPUs) encodes the tensors. Results come back to the driver in batches of
rows ``{row, sha256, width, height, format, size_bytes, error, vector}``; a file that cannot be used
is a row with its reason in ``error``, never a failed job. A worker that dies is Ray's to retry: a
decode task runs again (Ray's task retries), an embedding actor is restarted and its batch retried
(Ray Data's actor pools restart without limit). Nothing here touches the catalog or the
index: the driver commits each batch (:mod:`carmatch.ingest.ray_ingest`).

Ray is optional (``pip install -r requirements-ray.txt``); this module imports it only when a run starts.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from carmatch.config import Settings
from carmatch.embedding.titan_embedder import is_bedrock_model
from carmatch.errors import CancelledError, CarmatchError, ConfigError, ImageError, ModelMismatchError
from carmatch.images import decode_image, read_image_bytes, too_large

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install -r requirements-ray.txt (or pip install 'carmatch[ray]')"
BLANK_SIDE = 64  # a blank image of this side, put through the transform, gives the input tensor's shape
S3_READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class FileRow:
    """One file for the cluster: its position in the driver's list, its path and, for S3 copies, its URI."""

    row: int
    path: str
    uri: str = ""  # s3://bucket/key when the file is the local copy of an S3 object


@dataclass(frozen=True)
class RayPlan:
    """What one run needs: the model to load on each worker, the decode limits and the pool's shape."""

    model_name: str
    pretrained: str
    model_key: str  # every worker's model must show this key (same weights as the driver's)
    device: str
    offline: bool
    transform: Any  # open_clip's image transform (picklable)
    pixel_shape: tuple[int, ...]
    draft_side: int | None
    max_pixels: int
    max_bytes: int
    region: str
    batch_size: int
    workers: int
    gpus_per_worker: float
    worker_cpus: float
    decode_cpus: float
    decode_tasks: int


def require_ray() -> Any:
    """The ``ray`` module, or ConfigError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"CARMATCH_ENGINE=ray needs Ray, which is not installed: {INSTALL_HINT}") from exc
    return ray


def connect(address: str) -> Any:
    """Join the Ray cluster at ``address`` (empty: RAY_ADDRESS, else a local Ray on this machine), once per process."""
    ray = require_ray()
    if not ray.is_initialized():
        where = address or "a local Ray on this machine"
        log.info("Connecting to %s", where)
        try:
            ray.init(
                address=address or None, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(
                f"Cannot reach the Ray cluster at {where}: {str(exc).splitlines()[0] if str(exc) else exc}. "
                "Check RAY_ADDRESS (empty runs a local Ray); nothing was changed."
            ) from exc
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI draws its own bar from the committed batches
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    return ray


def pool_shape(settings: Settings, resources: dict[str, float]) -> tuple[int, float, float, float, int]:
    """(workers, GPUs per worker, CPUs per worker, CPUs per decode task, decode tasks at once) for a cluster.

    With GPUs (and a device other than cpu) each worker holds one GPU and a CPU, and decode tasks run
    apart on the other CPUs, one each, feeding the GPUs. CPU-only, the workers share the CPUs out
    (torch uses as many threads as its worker reserves) and the decode step asks for the same
    resources, so Ray Data runs it inside each worker: no tensor crosses the object store.
    """
    gpus = int(resources.get("GPU", 0))
    cpus = max(1, int(resources.get("CPU", 1)))
    if gpus and settings.device != "cpu":
        workers = settings.ray_workers or gpus
        return workers, 1.0, 1.0, 1.0, max(1, cpus - workers)
    workers = settings.ray_workers or max(1, cpus // 2)
    share = float(max(1, cpus // workers))
    return workers, 0.0, share, share, workers


def make_plan(settings: Settings, embedder: Any, resources: dict[str, float]) -> RayPlan:
    """The plan of a run embedding with ``embedder``'s model on a cluster with ``resources``."""
    if is_bedrock_model(embedder.spec.name):
        raise ConfigError(
            f"The ray engine embeds with open_clip models; {embedder.spec.name} is Titan on Bedrock, which "
            "embeds in AWS already: use the local engine (CARMATCH_ENGINE=local)."
        )
    transform = embedder.preprocess
    shape = tuple(np.asarray(transform(Image.new("RGB", (BLANK_SIDE, BLANK_SIDE)))).shape)
    workers, gpus, worker_cpus, decode_cpus, decode_tasks = pool_shape(settings, resources)
    return RayPlan(
        model_name=embedder.spec.name,
        pretrained=embedder.spec.pretrained,
        model_key=embedder.model_key,
        device="cuda" if gpus else "cpu",
        offline=settings.offline,
        transform=transform,
        pixel_shape=shape,
        draft_side=embedder.image_side,
        max_pixels=settings.max_image_pixels,
        max_bytes=settings.max_image_bytes,
        region=settings.aws_region,
        batch_size=settings.ray_batch_size,
        workers=workers,
        gpus_per_worker=gpus,
        worker_cpus=worker_cpus,
        decode_cpus=decode_cpus,
        decode_tasks=decode_tasks,
    )


# -- the stages (run on the workers) -------------------------------------------------------------
def read_file(path: str, uri: str, max_bytes: int, region: str) -> bytes:
    """A file's bytes from its path; from its S3 object when the path is not on this worker."""
    local = Path(path)
    if not uri or local.exists():
        return read_image_bytes(local, max_bytes)
    from botocore.exceptions import BotoCoreError, ClientError

    from carmatch.aws import make_client, parse_s3_uri

    bucket, key = parse_s3_uri(uri)
    try:
        body = make_client("s3", region).get_object(Bucket=bucket, Key=key)["Body"]
        try:
            data = bytearray()
            for chunk in body.iter_chunks(S3_READ_CHUNK):
                data += chunk
                if len(data) > max_bytes:
                    raise too_large(local.name, len(data), max_bytes)
        finally:
            body.close()
    except (ClientError, BotoCoreError) as exc:
        raise ImageError(f"{uri}: cannot read from S3 ({exc})") from exc
    return bytes(data)


def decode_batch(batch: dict[str, np.ndarray], plan: RayPlan) -> dict[str, np.ndarray]:
    """Read, validate and decode a batch of files into the model's input tensors (a reason per bad file)."""
    n = len(batch["row"])
    pixels = np.zeros((n, *plan.pixel_shape), dtype=np.float32)
    facts: dict[str, list[Any]] = {k: [] for k in ("sha256", "width", "height", "format", "size_bytes", "error")}
    for i, (path, uri) in enumerate(zip(batch["path"], batch["uri"], strict=True)):
        try:
            data = read_file(str(path), str(uri), plan.max_bytes, plan.region)
            loaded = decode_image(data, Path(str(path)).name, plan.max_pixels, plan.max_bytes, plan.draft_side)
            pixels[i] = np.asarray(plan.transform(loaded.image), dtype=np.float32)
            values: tuple[Any, ...] = (loaded.sha256, loaded.width, loaded.height, loaded.format, loaded.size_bytes, "")
        except ImageError as exc:
            values = ("", 0, 0, "", 0, str(exc).split(": ", 1)[-1])  # the reason, as local ingest reports it
        for key, value in zip(facts, values, strict=True):
            facts[key].append(value)
    out: dict[str, np.ndarray] = {"row": np.asarray(batch["row"], dtype=np.int64), "pixels": pixels}
    for key, values_ in facts.items():
        out[key] = np.asarray(values_, dtype=np.int64 if key in ("width", "height", "size_bytes") else object)
    return out


class EmbedWorker:
    """One model on one Ray worker (a GPU when the plan gives it one): encodes decoded batches."""

    def __init__(self, plan: RayPlan):
        from carmatch.embedding.embedder import load_clip_torch

        self.embedder = load_clip_torch(plan.model_name, plan.pretrained, plan.device, plan.offline)
        if self.embedder.model_key != plan.model_key:
            raise ModelMismatchError(
                f"A Ray worker loaded {plan.model_name} ({plan.pretrained}) as {self.embedder.model_key}, "
                f"not the driver's {plan.model_key}: the workers must see the same checkpoint file."
            )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        good = np.asarray([not error for error in batch["error"]], dtype=bool)
        vectors = np.zeros((len(good), self.embedder.dim), dtype=np.float32)
        if good.any():
            tensor = torch.from_numpy(np.ascontiguousarray(batch["pixels"][good]))
            vectors[good] = self.embedder.encode_image_tensor(tensor)
        out = {key: value for key, value in batch.items() if key != "pixels"}
        out["vector"] = vectors
        return out


# -- the driver ----------------------------------------------------------------------------------
def embed_files(
    files: Sequence[FileRow], plan: RayPlan, cancel: threading.Event | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Stream ``files`` through the cluster; yields result batches as they finish (in no set order)."""
    if not files:
        return
    ray = require_ray()
    items = [{"row": f.row, "path": f.path, "uri": f.uri} for f in files]
    blocks = max(1, math.ceil(len(items) / plan.batch_size))
    ds = ray.data.from_items(items, override_num_blocks=blocks)
    ds = ds.map_batches(
        decode_batch,
        batch_size=plan.batch_size,
        batch_format="numpy",
        fn_kwargs={"plan": plan},
        num_cpus=plan.decode_cpus,
        compute=ray.data.TaskPoolStrategy(size=plan.decode_tasks),
    )
    ds = ds.map_batches(
        EmbedWorker,
        batch_size=plan.batch_size,
        batch_format="numpy",
        fn_constructor_kwargs={"plan": plan},
        compute=ray.data.ActorPoolStrategy(size=plan.workers),
        num_cpus=plan.worker_cpus,
        num_gpus=plan.gpus_per_worker,
    )
    log.info(
        "Ray: %d file(s), %d worker(s) with %s GPU each, batches of %d",
        len(items),
        plan.workers,
        plan.gpus_per_worker,
        plan.batch_size,
    )
    batches = ds.iter_batches(batch_size=None, batch_format="numpy")
    try:
        for batch in batches:
            yield batch
            if cancel is not None and cancel.is_set():
                raise CancelledError("cancelled")
    except ray.exceptions.RayError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, CarmatchError):
            raise type(cause)(str(cause)) from exc
        raise CarmatchError(f"The Ray job failed: {str(exc).strip().splitlines()[-1]}") from exc
