"""S3 as an image source: ``carmatch ingest s3://bucket/prefix/``.

The prefix is listed page by page; image objects are downloaded a few at a time (each streamed to
disk in chunks, refused before the download when the listing says it is over the size limit) into
their local copy (:func:`carmatch.locations.s3_copy_path`, ``CARMATCH_HOME/s3/<bucket>/<key>``), and
every round of downloads is ingested like files of a folder (validated, keyed by content hash,
embedded, indexed) while the next round downloads. The local copy is where the image's pixels live
for thumbnails, training, captions and embedding; its path maps back to the S3 URI, which Titan
exports reference instead of uploading the image again.

Re-running resumes: an object whose local copy has the listed size and last-modified time is not
downloaded again, and the ingest recognises files it already recorded.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carmatch.atomic import atomic_open
from carmatch.aws import explain_aws_error, parse_s3_uri
from carmatch.errors import AwsError, CancelledError, InvalidInputError, StorageError
from carmatch.images import IMAGE_EXTENSIONS, is_image_path, too_large
from carmatch.ingest.pipeline import Ingestor, IngestReport, Limits
from carmatch.locations import S3_COPY_FOLDER, s3_copy_path, s3_uri_of
from carmatch.progress import Progress, no_progress

log = logging.getLogger(__name__)

PAGE_KEYS = 1000  # keys per ListObjectsV2 page (S3's maximum)
ROUND_OBJECTS = 2000  # objects downloaded, then ingested, at a time (the index is saved once a round)
DOWNLOAD_WORKERS = 8  # downloads in flight at once
GONE_CODES = ("NoSuchKey", "404", "NotFound")
NO_BUCKET_CODES = ("NoSuchBucket",)
DENIED_CODES = ("AccessDenied", "AllAccessDisabled", "403")


@dataclass(frozen=True)
class S3Object:
    """One listed object: its key, size and last-modified time (whole seconds since the epoch)."""

    key: str
    size: int
    modified: int


@dataclass
class S3IngestReport:
    """What an ingest from S3 did: the listing and downloads, then the ingest itself."""

    source: str
    copies: Path
    ingest: IngestReport = field(default_factory=IngestReport)
    listed: int = 0  # image objects listed under the prefix
    downloaded: int = 0
    downloaded_bytes: int = 0
    reused: int = 0  # local copies already up to date: not downloaded again

    @property
    def interrupted(self) -> bool:
        """True when the run stopped early (Ctrl-C or cancel); what was done is kept."""
        return self.ingest.interrupted

    def summary(self) -> str:
        """A few lines a person reads at the end of the run."""
        head = (
            f"{self.listed} image object(s) under {self.source}: {self.downloaded} downloaded "
            f"({self.downloaded_bytes / 1e6:.1f} MB), {self.reused} already in the local copy ({self.copies})."
        )
        return f"{head}\n{self.ingest.summary()}"


class _CappedWriter:
    """A write-only file that refuses to grow past ``limit`` bytes (the listing's size may be out of date)."""

    def __init__(self, handle: Any, limit: int, name: str):
        self.handle, self.limit, self.name, self.written = handle, limit, name, 0

    def write(self, data: bytes) -> int:
        self.written += len(data)
        if self.written > self.limit:
            raise too_large(self.name, self.written, self.limit)
        return int(self.handle.write(data))


class S3ImageSource:
    """The images under one S3 prefix, listed, downloaded into their local copies and ingested."""

    def __init__(
        self,
        client: Any,
        uri: str,
        home: Path,
        limits: Limits = Limits(),
        workers: int = DOWNLOAD_WORKERS,
        page_keys: int = PAGE_KEYS,
        round_objects: int = ROUND_OBJECTS,
    ):
        bucket, key = parse_s3_uri(
            uri,
            require_key=False,
            field="source",
            label="The S3 source",
            noun="an S3 folder",
            example="s3://bucket/cars/",
        )
        self.client = client
        self.bucket = bucket
        self.prefix = f"{key.strip('/')}/" if key.strip("/") else ""
        self.uri = f"s3://{bucket}/{self.prefix}"
        self.home = Path(home)
        self.limits = limits
        self.workers = workers
        self.page_keys = page_keys
        self.round_objects = round_objects

    @property
    def copies(self) -> Path:
        """The folder holding the local copies of this prefix's objects (it need not exist yet)."""
        return Path(self.home).expanduser().resolve() / S3_COPY_FOLDER / self.bucket / self.prefix

    # -- listing ----------------------------------------------------------------------------
    def _pages(self) -> Iterator[list[dict[str, Any]]]:
        """The listing, a page at a time; a missing bucket or a refused listing is one clear error."""
        from botocore.exceptions import BotoCoreError, ClientError

        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=self.prefix, PaginationConfig={"PageSize": self.page_keys}
        )
        try:
            for page in pages:
                yield list(page.get("Contents", []))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in NO_BUCKET_CODES:
                raise InvalidInputError(
                    field="source",
                    label="The S3 source",
                    value=self.uri,
                    reason=f"names bucket {self.bucket!r}, which does not exist; check the name (nothing was changed)",
                ) from exc
            if code in DENIED_CODES:
                raise AwsError(
                    f"Cannot list {self.uri}: access denied. The identity running carmatch needs s3:ListBucket on "
                    f"arn:aws:s3:::{self.bucket} and s3:GetObject on its objects (README, IAM permissions). "
                    "Nothing was changed."
                ) from exc
            raise explain_aws_error(exc, f"list {self.uri}") from exc
        except BotoCoreError as exc:
            raise explain_aws_error(exc, f"list {self.uri}") from exc

    def _wanted(self, item: dict[str, Any], report: S3IngestReport) -> S3Object | None:
        """The object when it is an image to fetch; None (a skip with its reason when it matters) otherwise."""
        key = str(item["Key"])
        if key.endswith("/") or not is_image_path(Path(key)):
            return None
        uri = f"s3://{self.bucket}/{key}"
        try:
            s3_copy_path(self.home, self.bucket, key)
        except InvalidInputError as exc:
            report.listed += 1
            report.ingest.skipped.append((uri, str(exc)))
            return None
        if any(part.startswith(".") for part in key[len(self.prefix) :].split("/")):
            return None  # hidden files and folders are skipped, as in a local folder
        report.listed += 1
        size = int(item.get("Size", 0))
        if size == 0:
            report.ingest.skipped.append((uri, "empty file (0 bytes)"))
            return None
        if size > self.limits.max_bytes:
            reason = too_large(key, size, self.limits.max_bytes).describe().split(": ", 1)[-1]
            report.ingest.skipped.append((uri, reason))
            return None
        return S3Object(key, size, int(item["LastModified"].timestamp()))

    def _rounds(self, report: S3IngestReport) -> Iterator[list[S3Object]]:
        """The image objects to fetch, ``round_objects`` at a time; refuses a prefix holding no images."""
        pending: list[S3Object] = []
        seen = 0
        for page in self._pages():
            seen += sum(1 for item in page if not str(item["Key"]).endswith("/"))  # console 'folders' aside
            for item in page:
                wanted = self._wanted(item, report)
                if wanted is not None:
                    pending.append(wanted)
                if len(pending) >= self.round_objects:
                    yield pending
                    pending = []
        if pending:
            yield pending
        if report.listed == 0:
            kinds = "/".join(sorted(ext.lstrip(".").upper() for ext in IMAGE_EXTENSIONS))
            found = f"{seen} object(s), none an image ({kinds})" if seen else "no objects"
            raise InvalidInputError(
                field="source",
                label="The S3 source",
                value=self.uri,
                reason=f"holds {found}; check the prefix (nothing was changed)",
            )

    # -- downloads --------------------------------------------------------------------------
    def _is_copied(self, obj: S3Object) -> bool:
        """True when the local copy has the object's size and last-modified time."""
        try:
            stat = s3_copy_path(self.home, self.bucket, obj.key).stat()
        except OSError:
            return False
        return stat.st_size == obj.size and int(stat.st_mtime) == obj.modified

    def _download(self, obj: S3Object) -> tuple[Path, int]:
        """Stream one object into its local copy (temp file, then rename); returns the path and bytes fetched."""
        target = s3_copy_path(self.home, self.bucket, obj.key)
        if self._is_copied(obj):
            return target, 0
        limit = self.limits.max_bytes
        with atomic_open(target, "wb") as handle:  # a killed download never leaves a half copy
            capped = _CappedWriter(handle, limit, target.name)
            # s3transfer: ranged GETs, each retried when a connection drops mid-body (a plain get_object is not)
            self.client.download_fileobj(self.bucket, obj.key, capped)
        os.utime(target, (obj.modified, obj.modified))  # size and time now match the listing: up to date
        return target, capped.written

    def _collect(self, futures: list[tuple[S3Object, Future[tuple[Path, int]]]], report: S3IngestReport) -> list[Path]:
        """Wait for a round's downloads; skip objects that vanished or cannot be copied, stop on a fatal error."""
        from botocore.exceptions import BotoCoreError, ClientError

        paths: list[Path] = []
        for obj, future in futures:
            uri = f"s3://{self.bucket}/{obj.key}"
            try:
                path, fetched = future.result()
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code not in GONE_CODES and code != "InvalidObjectState":
                    raise explain_aws_error(exc, f"download {uri}") from exc
                reason = (
                    "no longer in S3 (deleted after listing)" if code in GONE_CODES else "archived (restore it first)"
                )
                report.ingest.skipped.append((uri, reason))
                continue
            except BotoCoreError as exc:
                raise explain_aws_error(exc, f"download {uri}") from exc
            except InvalidInputError as exc:  # over the size limit after all
                report.ingest.skipped.append((uri, str(exc).split(": ", 1)[-1]))
                continue
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise StorageError(f"The disk holding {self.copies} is full: {exc.strerror}.") from exc
                report.ingest.skipped.append((uri, f"cannot write its local copy ({exc.strerror or exc})"))
                continue
            report.downloaded += 1 if fetched else 0
            report.reused += 0 if fetched else 1
            report.downloaded_bytes += fetched
            paths.append(path)
        return paths

    # -- the run ----------------------------------------------------------------------------
    def ingest(
        self,
        ingestor: Callable[[], Ingestor],
        progress: Progress = no_progress,
        cancel: threading.Event | None = None,
    ) -> S3IngestReport:
        """List, download and ingest every image under the prefix; resumable, cancellable.

        ``ingestor`` is called (the model loaded) only once the listing found images, so a missing
        bucket, a refused listing or an empty prefix is told at once and changes nothing.
        """
        report = S3IngestReport(self.uri, self.copies)
        rounds = self._rounds(report)
        first = next(rounds, None)  # a bad source raises here, before anything is written
        if first is None:
            return report  # every image listed was skipped before download (too large, empty, bad key)
        worker = ingestor()
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="carmatch-s3") as pool:

            def submit(objects: list[S3Object] | None) -> list[tuple[S3Object, Future[tuple[Path, int]]]]:
                return [(obj, pool.submit(self._download, obj)) for obj in objects or []]

            try:
                current = submit(first)
                while current:
                    upcoming = submit(next(rounds, None))  # downloads while this round is embedded
                    self._ingest_round(worker, self._collect(current, report), report, progress, cancel)
                    if report.interrupted:
                        break
                    current = upcoming
            except KeyboardInterrupt:
                report.ingest.interrupted = True
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        report.ingest.skipped = [(s3_uri_of(path, self.home) or path, why) for path, why in report.ingest.skipped]
        return report

    def _ingest_round(
        self,
        ingestor: Ingestor,
        paths: list[Path],
        report: S3IngestReport,
        progress: Progress,
        cancel: threading.Event | None,
    ) -> None:
        """Ingest one round of local copies, its counts added to the run's report."""
        if cancel is not None and cancel.is_set():
            report.ingest.interrupted = True
            return
        done = report.ingest.seen

        def overall(n: int, total: int, message: str) -> None:
            progress(done + n, max(report.listed, done + total), f"{message} {self.uri}")

        try:
            part = ingestor.ingest_paths(paths, self.copies, progress=overall, cancel=cancel)
        except CancelledError:
            report.ingest.interrupted = True
            return
        report.ingest.add(part)
