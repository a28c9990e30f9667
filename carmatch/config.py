"""Settings: one dataclass read once from ``CARMATCH_*`` environment variables.

Entry points call :func:`load_dotenv_file` first, when run as programs (``python app.py``,
``gradio app.py``, a Space, ``python -m admin``), so a ``.env`` file in the working directory can
supply the same variables. Importing ``app`` or ``carmatch`` never reads a ``.env``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from carmatch.bedrock_models import DEFAULT_CAPTION_MODEL, caption_model_for_region
from carmatch.errors import ConfigError

# The checkout's data/ folder (carmatch is installed editable from it), whatever the working directory.
DEFAULT_HOME = Path(__file__).resolve().parent.parent / "data"
# How every hint names the command line: the console script the README's set-up (`make`) installs.
CLI = ".venv/bin/carmatch"
DEFAULT_MODEL = "ViT-B-32-256"
DEFAULT_PRETRAINED = "datacomp_s34b_b86k"
DEFAULT_EMBED_DIM = 1024  # Titan Multimodal Embeddings G1 output length: 256, 384 or 1024
TITAN_EMBED_DIMS = (256, 384, 1024)
VECTOR_STORES = ("hnswlib", "milvus")  # CARMATCH_VECTOR_STORE: carmatch.stores.opening.open_store
ANN_METHODS = ("cells", "hnsw")  # CARMATCH_ANN: what answers above the exact size (carmatch.stores.index)
ENGINES = ("local", "ray")  # CARMATCH_ENGINE: carmatch.ingest.engines
BATCH_TIMEOUT_HOURS_RANGE = (24, 168)  # CreateModelInvocationJob timeoutDurationInHours


TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
_DOTENV_FAULT: list[ConfigError] = []  # a .env that could not be read: raised by load_settings


def _env_bool(value: str) -> bool:
    return value.strip().lower() in TRUE_WORDS


def _strict_bool(value: str) -> bool:
    """A yes/no setting: 1/true/yes/on or 0/false/no/off; anything else is refused (not read as false)."""
    word = value.strip().lower()
    if word not in TRUE_WORDS | FALSE_WORDS:
        raise ValueError("use true or false (1/0, yes/no, on/off)")
    return word in TRUE_WORDS


def setting(default: Any, env: str, help: str, *, secret: bool = False) -> Any:
    """A Settings field: its default, the environment variable that sets it, one line of help."""
    return field(default=default, repr=not secret, metadata={"env": env, "help": help, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """Every tunable of carmatch; each field names its environment variable and says what it does."""

    home: Path = setting(
        DEFAULT_HOME,
        "CARMATCH_HOME",
        "folder of the catalog, index, runs and thumbnails; relative to the working directory",
    )
    model: str = setting(
        DEFAULT_MODEL, "CARMATCH_MODEL", "open_clip model name, a path to a model config JSON, or bedrock/<Titan id>"
    )
    pretrained: str = setting(
        DEFAULT_PRETRAINED, "CARMATCH_PRETRAINED", "open_clip pretrained tag, a checkpoint path, or none"
    )
    device: str = setting("auto", "CARMATCH_DEVICE", "auto, cpu, cuda, cuda:N or mps")
    batch_size: int = setting(32, "CARMATCH_BATCH_SIZE", "images per embedding batch")
    engine: str = setting(
        "local", "CARMATCH_ENGINE", "where ingest and re-index embed: local (this process) or ray (a Ray cluster)"
    )
    ray_address: str = setting(
        "", "RAY_ADDRESS", "the Ray cluster of the ray engine (auto, ray://host:10001); empty = a local Ray here"
    )
    ray_batch_size: int = setting(64, "CARMATCH_RAY_BATCH_SIZE", "images per batch a Ray embedding worker encodes")
    ray_workers: int = setting(
        0, "CARMATCH_RAY_WORKERS", "Ray embedding workers (one model each); 0 = one per GPU, else one per 2 CPUs"
    )
    max_image_bytes: int = setting(50 * 1024 * 1024, "CARMATCH_MAX_IMAGE_BYTES", "largest image file read, in bytes")
    max_image_pixels: int = setting(64_000_000, "CARMATCH_MAX_IMAGE_PIXELS", "largest image decoded, width x height")
    max_upload_bytes: int = setting(
        200 * 1024 * 1024, "CARMATCH_MAX_UPLOAD_BYTES", "largest file the app accepts in one upload, in bytes"
    )
    search_per_minute: int = setting(120, "CARMATCH_SEARCH_PER_MINUTE", "searches one app client may run in any minute")
    max_query_upload_bytes: int = setting(
        10 * 1024 * 1024,
        "CARMATCH_MAX_QUERY_UPLOAD_BYTES",
        "largest upload a visitor who has not unlocked editing may send (a photo to search by), in bytes",
    )
    uploads_per_minute: int = setting(
        20, "CARMATCH_UPLOADS_PER_MINUTE", "uploads one app client (not unlocked) may send in any minute"
    )
    upload_bytes_per_hour: int = setting(
        200 * 1024 * 1024,
        "CARMATCH_UPLOAD_BYTES_PER_HOUR",
        "bytes one app client (not unlocked) may upload in any hour",
    )
    trusted_proxies: str = setting(
        "",
        "CARMATCH_TRUSTED_PROXIES",
        "addresses or networks (comma-separated) of the reverse proxies whose X-Forwarded-For names the visitor;"
        " empty: no proxy header is trusted",
    )
    exact_search_max: int = setting(
        40_000,
        "CARMATCH_EXACT_SEARCH_MAX",
        "collections up to this size are searched exactly (numpy), larger by CARMATCH_ANN",
    )
    ann: str = setting(
        "cells",
        "CARMATCH_ANN",
        "above the exact size: cells (exact scores over the nearest k-means cells; as fast for text as for photos)"
        " or hnsw (the hnswlib graph; slow for text queries)",
    )
    cell_probes: int = setting(
        0, "CARMATCH_CELL_PROBES", "cells scanned per query; 0 = the fewest measured to reach recall@10 0.99"
    )
    hnsw_m: int = setting(16, "CARMATCH_HNSW_M", "hnswlib graph degree M")
    hnsw_ef_construction: int = setting(200, "CARMATCH_HNSW_EF_CONSTRUCTION", "hnswlib ef while building")
    hnsw_ef_search: int = setting(
        0, "CARMATCH_HNSW_EF_SEARCH", "search ef; 0 = the smallest ef measured to reach recall@10 0.99"
    )
    vector_store: str = setting("hnswlib", "CARMATCH_VECTOR_STORE", "hnswlib (embedded) or milvus")
    milvus_uri: str = setting(
        "", "CARMATCH_MILVUS_URI", "Milvus Lite file or http://host:19530; empty = a Lite file in the home folder"
    )
    milvus_token: str = setting("", "CARMATCH_MILVUS_TOKEN", "Milvus user:password or API key", secret=True)
    milvus_collection: str = setting(
        "carmatch", "CARMATCH_MILVUS_COLLECTION", "the alias searched; generations are PREFIX_g<N> collections"
    )
    admin_password: str = setting(
        "", "CARMATCH_ADMIN_PASSWORD", "unlocks the app's Dataset and Training tabs; unset = read-only", secret=True
    )
    caption_model: str = setting(
        DEFAULT_CAPTION_MODEL, "CARMATCH_CAPTION_MODEL", "Bedrock model or inference profile that writes captions"
    )
    caption_max_tokens: int = setting(600, "CARMATCH_CAPTION_MAX_TOKENS", "token budget of one caption answer")
    caption_concurrency: int = setting(4, "CARMATCH_CAPTION_CONCURRENCY", "live caption requests in flight at once")
    aws_region: str = setting("us-east-1", "AWS_REGION", "AWS region (AWS_DEFAULT_REGION is read too)")
    batch_min_records: int = setting(100, "CARMATCH_BATCH_MIN_RECORDS", "fewest records Bedrock takes in a batch job")
    batch_max_records_per_job: int = setting(50_000, "CARMATCH_BATCH_MAX_RECORDS_PER_JOB", "most records per batch job")
    batch_max_records_per_file: int = setting(
        50_000, "CARMATCH_BATCH_MAX_RECORDS_PER_FILE", "most records per batch input file"
    )
    batch_max_file_bytes: int = setting(1_000_000_000, "CARMATCH_BATCH_MAX_FILE_BYTES", "largest batch input file")
    batch_max_job_bytes: int = setting(5_000_000_000, "CARMATCH_BATCH_MAX_JOB_BYTES", "largest batch job input")
    batch_bucket: str = setting("", "CARMATCH_BATCH_BUCKET", "default S3 bucket of the app's batch jobs panel")
    batch_prefix: str = setting("carmatch-batch", "CARMATCH_BATCH_PREFIX", "default folder in that bucket")
    batch_role_arn: str = setting("", "CARMATCH_BATCH_ROLE_ARN", "default service role Bedrock batch jobs assume")
    batch_timeout_hours: int = setting(
        72, "CARMATCH_BATCH_TIMEOUT_HOURS", "Bedrock ends a batch job after this many hours (24-168)"
    )
    titan_role_arn: str = setting("", "CARMATCH_TITAN_ROLE_ARN", "service role Bedrock Titan customization jobs assume")
    sagemaker_role_arn: str = setting("", "CARMATCH_SAGEMAKER_ROLE_ARN", "execution role of SageMaker training jobs")
    sagemaker_instance_type: str = setting(
        "ml.g5.xlarge", "CARMATCH_SAGEMAKER_INSTANCE_TYPE", "SageMaker training instance type (train --sagemaker)"
    )
    embed_dim: int = setting(
        DEFAULT_EMBED_DIM,
        "CARMATCH_EMBED_DIM",
        "Titan vector length (256, 384 or 1024) when CARMATCH_MODEL=bedrock/...",
    )
    titan_concurrency: int = setting(8, "CARMATCH_TITAN_CONCURRENCY", "Titan invoke_model calls in flight at once")
    offline: bool = setting(False, "CARMATCH_OFFLINE", "never try downloads (HF_HUB_OFFLINE=1 implies it)")
    detector: str = setting(
        "none",
        "CARMATCH_DETECTOR",
        "car detector run at ingest (each car becomes its own search hit): none, or a torchvision COCO model "
        "such as fasterrcnn_mobilenet_v3_large_fpn; ingest --cars turns it on for one run",
    )
    detector_min_score_percent: int = setting(
        50, "CARMATCH_DETECTOR_MIN_SCORE_PERCENT", "a detection counts as a car from this detector score (1-100)"
    )
    detector_min_side: int = setting(
        32, "CARMATCH_DETECTOR_MIN_SIDE", "smallest car kept, in pixels of its box's shorter side"
    )
    demo: bool = setting(True, "CARMATCH_DEMO", "on a Space, import the demo collection into an empty one at start")
    demo_dataset: str = setting(
        "", "CARMATCH_DEMO_DATASET", "Hub data set id or local folder of the demo; empty = Stanford Cars"
    )
    demo_count: int = setting(0, "CARMATCH_DEMO_COUNT", "images the start-up demo import takes; 0 = the default 2,000")
    persist_dir: str = setting(
        "",
        "CARMATCH_PERSIST_DIR",
        "folder that must outlive the machine (a Space's Storage Bucket): images, runs, exports and catalog"
        " snapshots; the live catalog and index stay in CARMATCH_HOME",
    )
    backup_keep: int = setting(
        5, "CARMATCH_BACKUP_KEEP", "timestamped catalog backups `carmatch backup` keeps in home/backups/"
    )
    persist_seconds: int = setting(
        5, "CARMATCH_PERSIST_SECONDS", "a catalog change reaches CARMATCH_PERSIST_DIR within this many seconds"
    )

    @property
    def db_path(self) -> Path:
        """SQLite catalog file."""
        return self.home / "carmatch.db"

    @property
    def index_dir(self) -> Path:
        """Folder holding index generations and the CURRENT pointer."""
        return self.home / "index"

    @property
    def milvus_location(self) -> str:
        """Where the Milvus store lives: CARMATCH_MILVUS_URI, or a Milvus Lite file in the home folder."""
        return self.milvus_uri or str(self.home / "milvus.db")

    @property
    def persist_folder(self) -> Path | None:
        """CARMATCH_PERSIST_DIR as a path, or None when unset."""
        return Path(self.persist_dir).expanduser() if self.persist_dir.strip() else None

    @property
    def files_home(self) -> Path:
        """Where files that must last go: copied-in images, runs, exports (the persist folder when set)."""
        return self.persist_folder or self.home

    @property
    def runs_dir(self) -> Path:
        """Folder holding fine-tuning runs and their checkpoints."""
        return self.files_home / "runs"

    @property
    def thumbs_dir(self) -> Path:
        """Folder of cached thumbnails."""
        return self.home / "thumbs"

    @property
    def uploads_dir(self) -> Path:
        """Folder where images uploaded through the app are stored."""
        return self.files_home / "uploads"

    @property
    def crops_dir(self) -> Path:
        """Where the cars cropped from traffic frames are kept (beside the uploads: they outlive the machine)."""
        return self.files_home / "crops"

    @property
    def resolved_device(self) -> str:
        """The torch device to use: ``auto`` becomes cuda when available, else cpu."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def with_overrides(self, **changes: object) -> Settings:
        """Return a copy with some fields replaced."""
        return replace(self, **changes)  # type: ignore[arg-type]


def env_names() -> dict[str, str]:
    """Settings field -> the environment variable that sets it (from the fields' metadata)."""
    return {f.name: f.metadata["env"] for f in fields(Settings)}


def _check_choice(field_name: str, value: str, choices: tuple[str, ...]) -> None:
    """ConfigError naming the variable when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ConfigError(
            field=field_name,
            value=value,
            label=env_names()[field_name],
            reason=f"is {value!r}: use one of {', '.join(choices)}",
        )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``env`` (default ``os.environ``); bad values raise ConfigError."""
    if env is None and _DOTENV_FAULT:
        raise _DOTENV_FAULT[0]
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    types = {f.name: f.type for f in fields(Settings)}
    for name, var in env_names().items():
        if var == "AWS_REGION":
            continue  # read below, with AWS_DEFAULT_REGION
        raw = env.get(var)
        if raw is None or raw.strip() == "":
            continue
        raw = raw.strip()
        kind = types[name]
        try:
            if kind in ("int", int):
                number = int(raw.replace("_", ""))
                if number <= 0:
                    raise ValueError("must be positive")
                values[name] = number
            elif kind in ("bool", bool):
                values[name] = _strict_bool(raw)
            elif kind in ("Path", Path):
                values[name] = Path(raw).expanduser()
            else:
                values[name] = raw
        except ValueError as exc:
            raise ConfigError(f"{var}={raw!r} is not valid: {exc}") from exc
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        values["aws_region"] = region.strip()
    region_name = str(values.get("aws_region", Settings.aws_region))
    values["caption_model"] = caption_model_for_region(
        str(values.get("caption_model", DEFAULT_CAPTION_MODEL)), region_name
    )
    if "offline" not in values and _env_bool(env.get("HF_HUB_OFFLINE", "")):
        values["offline"] = True
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.device not in {"auto", "cpu", "cuda", "mps"} and not settings.device.startswith("cuda:"):
        raise ConfigError(f"CARMATCH_DEVICE={settings.device!r}: use auto, cpu, cuda or cuda:N")
    _check_choice("vector_store", settings.vector_store, VECTOR_STORES)
    _check_choice("ann", settings.ann, ANN_METHODS)
    if settings.engine not in ENGINES:
        raise ConfigError(
            field="engine",
            value=settings.engine,
            label="CARMATCH_ENGINE",
            reason=f"is {settings.engine!r}: use one of {', '.join(ENGINES)}",
        )
    if settings.embed_dim not in TITAN_EMBED_DIMS:
        raise ConfigError(
            f"CARMATCH_EMBED_DIM={settings.embed_dim}: Titan offers {', '.join(map(str, TITAN_EMBED_DIMS))}"
        )
    if settings.detector_min_score_percent > 100:
        raise ConfigError(f"CARMATCH_DETECTOR_MIN_SCORE_PERCENT={settings.detector_min_score_percent}: use 1-100")
    low, high = BATCH_TIMEOUT_HOURS_RANGE
    if not low <= settings.batch_timeout_hours <= high:
        raise ConfigError(f"CARMATCH_BATCH_TIMEOUT_HOURS={settings.batch_timeout_hours}: Bedrock allows {low}-{high}")
    return settings


def load_dotenv_file(path: Path | None = None) -> None:
    """Load a ``.env`` file into the environment (entry points run as programs only; existing vars win)."""
    from dotenv import load_dotenv

    dotenv = path or Path.cwd() / ".env"
    _DOTENV_FAULT.clear()
    try:
        load_dotenv(dotenv_path=dotenv, override=False)
    except (UnicodeDecodeError, OSError) as exc:  # load_settings raises it: one line at the CLI, the app's notice
        reason = "is not UTF-8 text; save it as UTF-8"
        if isinstance(exc, OSError):
            reason = f"cannot be read ({exc.strerror or exc})"
        _DOTENV_FAULT[:] = [ConfigError(f"The settings file {dotenv} {reason}.")]
