"""SageMaker uploads: the source package (pinned container requirements), the dataset and images, the code.

Images go up through one s3transfer ``TransferManager``, many at once and each in parts, and only those the
bucket does not hold yet (they are stored content-addressed).
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from carmatch.aws import Upload, upload_files
from carmatch.errors import AwsError, InvalidInputError
from carmatch.training.config import TrainConfig
from carmatch.training.data import Pair, pair_record

ENTRY_POINT = "train_entry.py"
MANIFEST_SUFFIX = ".manifest"  # a channel whose URI ends so is a SageMaker manifest file, not a prefix
ENTRY_SOURCE = (
    '"""SageMaker entry point: carmatch\'s own training loop."""\n'
    "from carmatch.training.entry import main\n\nraise SystemExit(main())\n"
)
# The container's torch/torchvision stay the DLC's own; what carmatch adds is pinned to this machine's versions, so
# the job trains with the code that was tested here (a missing package falls back to requirements.txt's pin).
CONTAINER_PACKAGES = ("open_clip_torch", "ftfy", "regex", "timm", "huggingface_hub", "safetensors")


def _aws(action: str, region: str | None = None) -> Callable[[BaseException], AwsError]:
    from carmatch.aws import explain_aws_error

    return lambda exc: explain_aws_error(exc, action, region)


def container_requirements() -> str:
    """requirements.txt of the training container: carmatch's packages at the versions installed here."""
    from importlib.metadata import PackageNotFoundError, version

    lines = []
    for name in CONTAINER_PACKAGES:
        try:
            lines.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue  # not installed here: the container installs what open_clip_torch asks for
    return "\n".join(lines) + "\n"


def package_source() -> bytes:
    """A sourcedir.tar.gz: the carmatch package, the entry script and requirements.txt."""
    package = Path(__file__).resolve().parents[1]  # the carmatch package
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(package.rglob("*.py")):
            if "__pycache__" in path.parts or "ui" in path.relative_to(package).parts:
                continue
            tar.add(path, arcname=f"carmatch/{path.relative_to(package).as_posix()}")
        for name, text in ((ENTRY_POINT, ENTRY_SOURCE), ("requirements.txt", container_requirements())):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def upload_dataset(
    s3: Any,
    pairs: list[Pair],
    bucket: str,
    prefix: str,
    job_name: str,
    model_config: Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, str]:
    """Upload images (only those not already there) and the job's pairs JSONL; returns channel name → S3 URI."""
    from botocore.exceptions import BotoCoreError, ClientError

    images_prefix = f"{prefix}/images/"
    job_prefix = f"{prefix}/jobs/{job_name}/training/"
    try:
        existing: set[str] = set()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=images_prefix):
            existing.update(obj["Key"] for obj in page.get("Contents", []))
        records = [pair_record(pair, f"{pair.image_id}{Path(pair.path).suffix.lower() or '.jpg'}") for pair in pairs]
        missing = {
            images_prefix + r["path"]: str(p.path)
            for r, p in zip(records, pairs)
            if images_prefix + r["path"] not in existing
        }
        upload_files(s3, [Upload(path, bucket, key) for key, path in missing.items()], progress)
        body = "".join(json.dumps(r) + "\n" for r in records).encode()
        s3.put_object(Bucket=bucket, Key=job_prefix + "pairs.jsonl", Body=body)
        # the images channel lists this job's images only, not every image the prefix ever received
        manifest = [{"prefix": f"s3://{bucket}/{images_prefix}"}, *sorted({r["path"] for r in records})]
        manifest_key = f"{prefix}/jobs/{job_name}/images{MANIFEST_SUFFIX}"
        s3.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(manifest).encode())
        if model_config is not None:
            s3.put_object(Bucket=bucket, Key=job_prefix + model_config.name, Body=model_config.read_bytes())
    except OSError as exc:
        raise InvalidInputError(f"Cannot read an image to upload: {exc}") from exc
    except (BotoCoreError, ClientError) as exc:
        raise _aws(f"upload the dataset to s3://{bucket}/{prefix}")(exc) from exc
    return {"training": f"s3://{bucket}/{job_prefix}", "images": f"s3://{bucket}/{manifest_key}"}


def upload_code(s3: Any, config: TrainConfig, bucket: str, job_prefix: str, region: str) -> tuple[str, str | None]:
    """Upload sourcedir.tar.gz (and a local base checkpoint); returns (source URI, ``base`` channel URI or None)."""
    from botocore.exceptions import BotoCoreError, ClientError

    base_uri = None
    try:
        source_key = f"{job_prefix}/source/sourcedir.tar.gz"
        s3.put_object(Bucket=bucket, Key=source_key, Body=package_source())
        if config.pretrained != "none" and Path(config.pretrained).is_file():
            base_key = f"{job_prefix}/base/{Path(config.pretrained).name}"
            s3.upload_file(str(config.pretrained), bucket, base_key)  # streamed from disk, in parts
            base_uri = f"s3://{bucket}/{job_prefix}/base/"
    except (BotoCoreError, ClientError) as exc:
        raise _aws("upload the training code", region)(exc) from exc
    return f"s3://{bucket}/{source_key}", base_uri
