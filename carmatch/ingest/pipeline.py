"""Ingest: folders and caption CSVs into the catalog, embeddings into the cache and the index.

Everything is committed in small steps (one catalog row per image, one embedding batch at a
time), so an interruption loses nothing already done and the next run resumes.
"""

from __future__ import annotations

import csv
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from carmatch.catalog import Catalog
from carmatch.dataset.curation import MAX_CAPTION_CHARS
from carmatch.dataset.import_captions import REVIEWED, ImportRow, find_image, plain_text
from carmatch.embedding.embedder import Embedder
from carmatch.errors import (
    CancelledError,
    CarmatchError,
    ImageError,
    InvalidInputError,
    ModelMismatchError,
    NotFoundError,
)
from carmatch.images import (
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_IMAGE_PIXELS,
    decode_image,
    is_image_path,
    load_image,
    read_image_bytes,
)
from carmatch.ingest.file_records import FileRecorder, ImageFacts
from carmatch.progress import Progress, no_progress
from carmatch.stores.index import IndexManifest
from carmatch.stores.store import SearchIndex, VectorStore

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    """What an ingest run did."""

    seen: int = 0
    added: int = 0
    present: int = 0
    relocated: int = 0  # known images found at a new place: their location was updated, nothing else
    embedded: int = 0
    captions_imported: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    caption_rows_skipped: list[tuple[str, str]] = field(default_factory=list)
    reviews_kept: dict[str, int] = field(default_factory=dict)  # reviewed captions the CSV would change, kept
    reviews_reset: dict[str, int] = field(default_factory=dict)  # ... replaced (--reset-reviewed): now unreviewed
    deleted_skipped: int = 0
    interrupted: bool = False
    added_ids: list[str] = field(default_factory=list)

    def add(self, part: IngestReport) -> None:
        """Count another run's files into this report (S3 rounds, a traffic frame's crops)."""
        self.seen += part.seen
        self.added += part.added
        self.present += part.present
        self.relocated += part.relocated
        self.embedded += part.embedded
        self.deleted_skipped += part.deleted_skipped
        self.skipped.extend(part.skipped)
        self.added_ids.extend(part.added_ids)
        self.interrupted = self.interrupted or part.interrupted

    def summary(self) -> str:
        """A few lines a person reads at the end of an ingest."""
        lines = [
            f"Added {self.added} new image(s), {self.present} already present, "
            f"{len(self.skipped)} skipped, {self.embedded} embedded."
        ]
        if self.relocated:
            lines.append(
                f"{self.relocated} known image(s) were found at a new place: their location is updated, "
                "captions, history and reviews are kept."
            )
        if self.deleted_skipped:
            lines.append(f"{self.deleted_skipped} image(s) were deleted from the collection earlier and stay deleted.")
        if self.captions_imported or self.caption_rows_skipped:
            lines.append(
                f"Captions imported: {self.captions_imported}; caption rows skipped: {len(self.caption_rows_skipped)}."
            )
        for path, reason in self.skipped[:50]:
            lines.append(f"  skipped {path}: {reason}")
        if len(self.skipped) > 50:
            lines.append(f"  ... and {len(self.skipped) - 50} more skipped")
        for state, n in self.reviews_kept.items():
            lines.append(
                f"{n} {state} image(s) keep their review decision: the CSV's different caption was not stored "
                "(--reset-reviewed stores it and sends them back to unreviewed)."
            )
        for state, n in self.reviews_reset.items():
            lines.append(f"{n} {state} image(s) got the CSV's caption and returned to unreviewed.")
        for file, reason in self.caption_rows_skipped[:20]:
            lines.append(f"  caption row {file}: {reason}")
        if self.interrupted:
            lines.append("Interrupted: everything above is saved; run the same command again to resume.")
        return "\n".join(lines)


@dataclass(frozen=True)
class Limits:
    """Image size limits applied while ingesting."""

    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS


def printable_path(path: Path | str) -> str:
    """A path as text that can be printed and stored: undecodable bytes of its name shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def storable_paths(paths: Sequence[Path], report: IngestReport) -> list[Path]:
    """The paths whose names are valid UTF-8 (the catalog stores text); each other one skipped with its reason."""
    kept = []
    for path in paths:
        try:
            str(path).encode("utf-8")
        except UnicodeEncodeError:
            report.skipped.append((printable_path(path), "its name is not valid UTF-8 text: rename the file"))
            continue
        kept.append(path)
    return kept


def find_images(folder: Path) -> list[Path]:
    """Every file under ``folder`` with an image extension, sorted, hidden folders skipped."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not name.startswith(".") and is_image_path(path):
                found.append(path)
    return found


def read_captions_csv(path: Path) -> list[tuple[str, str]]:
    """Rows of a ``file,caption`` CSV; raises InvalidInputError when the header is wrong."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh, strict=True)  # an unterminated quote is an error, not a swallowed row
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            if "file" not in header or "caption" not in header:
                raise InvalidInputError(f"{path}: a captions CSV needs the columns file,caption (found {header})")
            rows = []
            for row in reader:
                clean = {(k or "").strip().lower(): (v or "") for k, v in row.items()}
                rows.append((clean["file"].strip(), plain_text(clean["caption"]).strip()))  # no NUL bytes
            return rows
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInputError(f"Cannot read captions file {path}: {exc}") from exc


class Ingestor:
    """Adds images to the catalog, embeds what the active model has not seen, updates the index."""

    def __init__(
        self,
        catalog: Catalog,
        embedder: Embedder,
        store: VectorStore,
        batch_size: int = 32,
        limits: Limits = Limits(),
    ):
        self.catalog = catalog
        self.embedder = embedder
        self.store = store
        self.batch_size = batch_size
        self.limits = limits
        self.draft_side = embedder.image_side  # JPEGs decoded at the model's size
        self.files = FileRecorder(catalog)  # lookups and records of the files met
        self.reset_reviewed = False  # ingest --captions --reset-reviewed: replace approved/rejected captions too

    # -- public -----------------------------------------------------------------------------
    def ingest_folder(
        self,
        folder: Path,
        captions_csv: Path | None = None,
        progress: Progress = no_progress,
        cancel: threading.Event | None = None,
    ) -> IngestReport:
        """Ingest every image under ``folder`` (and optional captions); resumable."""
        folder = Path(folder).expanduser().resolve()
        if not folder.is_dir():
            raise InvalidInputError(f"{folder} is not a folder")
        caption_rows = read_captions_csv(captions_csv) if captions_csv else []
        return self.ingest_paths(find_images(folder), folder, caption_rows, progress, cancel)

    def ingest_paths(
        self,
        paths: Sequence[Path],
        root: Path | None = None,
        caption_rows: Sequence[tuple[str, str]] = (),
        progress: Progress = no_progress,
        cancel: threading.Event | None = None,
    ) -> IngestReport:
        """Ingest the given image files; ``root`` makes caption-CSV paths relative.

        Holds the index write lock throughout, so no model swap or bulk delete lands between loading
        the index and saving it (an index of another model than CURRENT's is refused, not saved).
        """
        with self.store.write_lock.holding("ingest", progress):
            index = self._open_index()
            report = IngestReport(seen=len(paths))
            try:
                self._pipeline(storable_paths(paths, report), root, index, report, progress, cancel)
                if caption_rows and root is not None:
                    self._import_captions(caption_rows, root, report)
            except (KeyboardInterrupt, CancelledError):
                report.interrupted = True
            finally:
                self._sync_and_save(index)
        return report

    # -- steps ------------------------------------------------------------------------------
    def _open_index(self) -> SearchIndex:
        if not self.store.exists():
            return self.store.new_index(manifest_for(self.embedder))
        try:
            return self.store.load(self.embedder.model_key)
        except ModelMismatchError as exc:
            raise ModelMismatchError(
                f"{exc} Ingest would mix embeddings of two models, so it stopped before changing anything."
            ) from exc

    def _pipeline(
        self,
        paths: list[Path],
        root: Path | None,
        index: SearchIndex,
        report: IngestReport,
        progress: Progress,
        cancel: threading.Event | None,
    ) -> None:
        """Read, validate, record and preprocess chunk n+1 in a worker while the model encodes chunk n."""
        if not paths:
            return
        queued: set[str] = set()
        chunks = [paths[i : i + self.batch_size] for i in range(0, len(paths), self.batch_size)]
        done = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="carmatch-decode") as pool:
            stage = lambda chunk: self._stage(chunk, root, report, queued)  # noqa: E731
            future: Future[tuple[list[str], Any]] | None = pool.submit(stage, chunks[0])
            for n in range(len(chunks)):
                assert future is not None
                ids, tensor = future.result()
                if cancel is not None and cancel.is_set():
                    raise CancelledError("cancelled")
                future = pool.submit(stage, chunks[n + 1]) if n + 1 < len(chunks) else None
                if ids:
                    vectors = self.embedder.encode_image_tensor(tensor)
                    self.catalog.put_embeddings(self.embedder.model_key, ids, vectors)
                    index.add(ids, vectors)
                    report.embedded += len(ids)
                done += len(chunks[n])
                progress(done, len(paths), "ingesting")
                if cancel is not None and cancel.is_set():
                    raise CancelledError("cancelled")

    def _stage(
        self,
        chunk: list[Path],
        root: Path | None,
        report: IngestReport,
        queued: set[str],
    ) -> tuple[list[str], Any]:
        """Record a chunk of files; return ids needing an embedding and their input tensor."""
        found = [(path, *self._register_one(path, root, report)) for path in chunk]
        known = [image_id for _, image_id, _ in found if image_id is not None and image_id not in queued]
        embedded = self.catalog.get_embeddings(self.embedder.model_key, known).keys()  # this chunk's, not all
        ids, images = [], []
        for path, image_id, image in found:
            if image_id is None or image_id in embedded or image_id in queued:
                continue
            if image is None:  # known file without an embedding for this model: decode it now
                try:
                    image = load_image(path, self.limits.max_pixels, self.limits.max_bytes, self.draft_side).image
                except ImageError as exc:
                    report.skipped.append((str(path), str(exc).split(": ", 1)[-1]))
                    continue
            ids.append(image_id)
            images.append(image)
            queued.add(image_id)
        return ids, (self.embedder.preprocess_images(images) if images else None)

    def _register_one(
        self, path: Path, root: Path | None, report: IngestReport
    ) -> tuple[str | None, Image.Image | None]:
        """Record one file in the catalog; returns its id and, if it was decoded, the image."""
        found = self.files.lookup(path, root, report)
        if found is None:
            return None, None
        if found.known is not None:
            return found.known, None
        try:
            data = read_image_bytes(found.resolved, self.limits.max_bytes)
            name = found.resolved.name
            loaded = decode_image(data, name, self.limits.max_pixels, self.limits.max_bytes, self.draft_side)
        except ImageError as exc:
            report.skipped.append((str(path), str(exc).split(": ", 1)[-1]))
            return None, None
        facts = ImageFacts(loaded.sha256, loaded.width, loaded.height, loaded.format, loaded.size_bytes)
        return self.files.record(found, root, facts, report), loaded.image

    def _import_captions(self, rows: Sequence[tuple[str, str]], root: Path, report: IngestReport) -> None:
        """Store the captions CSV's captions, matching rows as `dataset import` does (find_image)."""
        for file, caption in rows:
            if not file:
                report.caption_rows_skipped.append(("(empty)", "no file name"))
                continue
            if not caption:
                report.caption_rows_skipped.append((file, "empty caption"))
                continue
            if len(caption) > MAX_CAPTION_CHARS:  # the editor's limit holds for every way in
                report.caption_rows_skipped.append((file, f"caption over {MAX_CAPTION_CHARS} characters"))
                continue
            try:
                record = find_image(self.catalog, ImportRow(0, caption, file=file), root)
            except (NotFoundError, InvalidInputError) as exc:
                report.caption_rows_skipped.append((file, str(exc)))
                continue
            if record.caption == caption:
                continue
            state = record.review_state or "unreviewed"
            if state in REVIEWED and not self.reset_reviewed:
                report.reviews_kept[state] = report.reviews_kept.get(state, 0) + 1
                continue
            if self.catalog.import_caption(record.id, caption):
                if state in REVIEWED:
                    report.reviews_reset[state] = report.reviews_reset.get(state, 0) + 1
                report.captions_imported += 1
            else:
                report.caption_rows_skipped.append((file, "kept the caption a person wrote"))

    def _sync_and_save(self, index: SearchIndex) -> None:
        """Make the index hold exactly the live, embedded images, then save it if it changed.

        This is also the repair after a crash between the catalog commit and the store write: what
        the catalog has and the store lacks is added from cached embeddings (never re-embedded). Such
        a crash leaves the counts apart, so while they agree the whole-collection comparison (a second
        at 100k images) is skipped and a one-image ingest stays a matter of milliseconds.
        """
        if self.store.exists() and self.catalog.count() == len(index):
            if index.manifest.count != self._saved_count():
                self.store.save(index)
            return
        live = set(self.catalog.ids())
        present = set(index.ids)  # one listing, not one store lookup per image
        stale = [i for i in present if i not in live]
        missing = [i for i in self.catalog.embedded_ids(self.embedder.model_key) if i not in present]
        changed = bool(stale or missing) or not self.store.exists()
        index.remove(stale)
        if missing:
            cached = self.catalog.get_embeddings(self.embedder.model_key, missing)
            ids = list(cached)
            if ids:
                index.add(ids, np.stack([cached[i] for i in ids]))
        if changed or index.manifest.count != self._saved_count():
            self.store.save(index)

    def _saved_count(self) -> int:
        try:
            return self.store.read_manifest().count
        except CarmatchError:
            return -1


def manifest_for(embedder: Embedder) -> IndexManifest:
    """The manifest an index built by ``embedder`` carries."""
    info = embedder.describe()
    return IndexManifest(
        model_key=embedder.model_key,
        model=info["model"],
        pretrained=info["pretrained"],
        weights_hash=info["weights_hash"],
        dim=embedder.dim,
    )
