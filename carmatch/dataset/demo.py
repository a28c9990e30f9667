"""The demo collection: cars from a public data set (Stanford Cars on the Hugging Face Hub), captioned by class.

Rows are read with the ``datasets`` library in streaming mode, so ``n=2000`` downloads about 2000
images, not the whole set. ``source`` is a Hub data set id or a local folder ``datasets.load_dataset``
reads: an image folder with one sub-folder per class (``train/2012 Tesla Model S Sedan/0001.jpg``) or
parquet files with an image column and a class-label column. Each image is saved under
``CARMATCH_HOME/demo/``, ingested like any folder, and captioned from its class name (source
``dataset``; a caption already there is kept). Rows come in a seeded order and are written in
chunks, so Ctrl-C keeps every chunk already ingested and a re-run skips what is on disk.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carmatch.atomic import write_bytes
from carmatch.dataset.demo_labels import label_attributes, label_caption, usable_label
from carmatch.errors import CancelledError, CarmatchError, ConflictError, InvalidInputError
from carmatch.progress import Progress, no_progress
from carmatch.runtime import Runtime

log = logging.getLogger(__name__)

# tanganke/stanford_cars: a parquet copy of Stanford Cars (Krause et al., 3DRR 2013): 196 classes
# named "Make Model Body Year", 8,144 train / 8,041 test images. The images come from the web and
# Stanford released the set for non-commercial research use; check its terms before other uses.
DEMO_DATASET = "tanganke/stanford_cars"
DEMO_SPLIT = "train"
DEMO_COUNT = 2000
DEMO_SEED = 0
DEMO_FOLDER = "demo"  # under CARMATCH_HOME
DEMO_DONE_KEY = "demo_import_done"  # catalog meta: the source of a finished import
CHUNK_ROWS = 64  # images written and ingested together; Ctrl-C loses at most one chunk
SHUFFLE_BUFFER = 1000  # rows held for the seeded streaming shuffle
LABEL_NAMES = ("label", "labels", "class", "class_name", "category", "name")  # string label columns


@dataclass(frozen=True)
class DemoRow:
    """One image of the data set: where it goes on disk, its bytes, and its class name."""

    file: Path
    data: bytes
    label: str


@dataclass
class DemoReport:
    """What a demo import did."""

    wanted: int = 0
    written: int = 0  # image files saved by this run
    on_disk: int = 0  # rows already saved by an earlier run
    added: int = 0  # images new to the collection
    captioned: int = 0
    skipped: int = 0  # rows without bytes or without a usable label
    interrupted: bool = False

    def summary(self) -> str:
        """One line for the CLI."""
        state = "interrupted (run again to resume)" if self.interrupted else "done"
        return (
            f"demo import {state}: {self.written} images saved ({self.on_disk} already there), "
            f"{self.added} new in the collection, {self.captioned} captioned from their class, "
            f"{self.skipped} rows skipped"
        )


def demo_folder(runtime: Runtime) -> Path:
    """Where demo images are saved."""
    return runtime.settings.files_home / DEMO_FOLDER


def _load(source: str, split: str) -> Any:
    """The streaming data set ``source``/``split``; a missing set or split is an InvalidInputError."""
    import datasets

    local = Path(source).expanduser()
    target = str(local.resolve()) if local.is_dir() else source
    try:
        return datasets.load_dataset(target, split=split, streaming=True)
    except (datasets.exceptions.DatasetNotFoundError, FileNotFoundError) as exc:
        raise InvalidInputError(
            field="dataset", value=source, reason=f"is neither a folder nor a data set on the Hub ({exc})"
        ) from exc
    except ValueError as exc:  # an unknown split, or files load_dataset cannot read
        if "split" in str(exc).lower():
            raise InvalidInputError(field="split", value=split, reason=f"is not in {source!r}: {exc}") from exc
        raise InvalidInputError(field="dataset", value=source, reason=f"cannot be read: {exc}") from exc
    except (ConnectionError, OSError) as exc:
        raise CarmatchError(f"Could not reach the data set {source!r}: {exc}") from exc


def _columns(stream: Any, source: str) -> tuple[str, str, Any]:
    """(image column, label column, ClassLabel feature or None); an unusable data set is an InvalidInputError."""
    import datasets

    features = stream.features or stream._resolve_features().features
    images = [name for name, feature in features.items() if isinstance(feature, datasets.Image)]
    if not images:
        raise InvalidInputError(
            field="dataset", value=source, reason=f"has no image column (columns: {', '.join(features)})"
        )
    class_labels = [(n, f) for n, f in features.items() if isinstance(f, datasets.ClassLabel)]
    for name, feature in class_labels:
        if any(usable_label(label) for label in feature.names):
            return images[0], name, feature
    for name, feature in features.items():
        if (
            name.lower() in LABEL_NAMES
            and isinstance(feature, datasets.Value)
            and feature.dtype in ("string", "large_string")
        ):
            return images[0], name, None
    raise InvalidInputError(
        field="dataset",
        value=source,
        reason="has no usable class label: it needs a class-label column whose names are car names, "
        "or a text column called label or class",
    )


def open_rows(runtime: Runtime, source: str, split: str, seed: int) -> Iterator[DemoRow | None]:
    """The data set's rows in a seeded order, as DemoRows (None for a row without bytes or label)."""
    import datasets

    stream = _load(source, split)
    image_col, label_col, class_label = _columns(stream, source)
    stream = stream.cast_column(image_col, datasets.Image(decode=False)).shuffle(seed=seed, buffer_size=SHUFFLE_BUFFER)
    folder = demo_folder(runtime) / split
    return _rows(stream, folder, image_col, label_col, class_label)


def _rows(stream: Any, folder: Path, image_col: str, label_col: str, class_label: Any) -> Iterator[DemoRow | None]:
    for position, row in enumerate(stream):
        raw = row[label_col]
        label = usable_label(class_label.int2str(raw) if class_label is not None and raw is not None else raw)
        image = row[image_col] or {}
        data = image.get("bytes") or _read(image.get("path"))
        if label is None or not data:
            yield None
            continue
        yield DemoRow(folder / f"{position:06d}.jpg", data, label)


def _read(path: str | None) -> bytes | None:
    if not path or not Path(path).is_file():
        return None
    return Path(path).read_bytes()


def check_collection(runtime: Runtime) -> None:
    """Refuse to mix demo cars into a collection of someone's own images (a resumed demo import is fine)."""
    count = runtime.catalog.count()
    if count and not demo_folder(runtime).is_dir():
        raise ConflictError(
            f"The demo fills an empty collection, and this one already has {count} images of your own; "
            "use a separate CARMATCH_HOME for the demo."
        )


def import_demo(
    runtime: Runtime,
    source: str = DEMO_DATASET,
    split: str = DEMO_SPLIT,
    n: int = DEMO_COUNT,
    seed: int = DEMO_SEED,
    progress: Progress = no_progress,
    cancel: threading.Event | None = None,
) -> DemoReport:
    """Fill an empty collection with ``n`` captioned cars from ``source``; resumable, adds nothing twice."""
    if n < 1:
        raise InvalidInputError(field="n", value=n, limit=(1, None))
    check_collection(runtime)
    rows = open_rows(runtime, source, split, seed)  # checks the columns before anything is written
    report = DemoReport(wanted=n)
    chunk: list[DemoRow] = []
    try:
        for row in rows:
            if cancel is not None and cancel.is_set():
                raise CancelledError("The demo import was cancelled.")
            if row is None:
                report.skipped += 1
                continue
            chunk.append(row)
            if report.written + report.on_disk + len(chunk) >= n or len(chunk) >= CHUNK_ROWS:
                _store(runtime, chunk, report, cancel)
                chunk = []
                progress(report.written + report.on_disk, n, "demo import")
            if report.written + report.on_disk >= n:
                break
        _store(runtime, chunk, report, cancel)
    except (KeyboardInterrupt, CancelledError):
        report.interrupted = True
        return report
    if report.interrupted:
        return report
    progress(report.written + report.on_disk, n, "demo import")  # fewer than n when the set ran out
    runtime.catalog.set_meta(DEMO_DONE_KEY, f"{source} {split} n={n} seed={seed}")
    return report


def _store(runtime: Runtime, chunk: list[DemoRow], report: DemoReport, cancel: threading.Event | None) -> None:
    """Save the chunk's new files, ingest them, and caption each from its class name."""
    if not chunk:
        return
    for row in chunk:
        if row.file.exists():
            report.on_disk += 1
        else:
            write_bytes(row.file, row.data)
            report.written += 1
    with runtime.store.write_lock:
        ingest = runtime.ingestor().ingest_paths([row.file for row in chunk], demo_folder(runtime), cancel=cancel)
    report.added += len(ingest.added_ids)
    report.skipped += len(ingest.skipped)
    for row in chunk:
        record = runtime.catalog.find_by_path(str(row.file.resolve()))
        if record is not None and record.caption is None:
            attributes = label_attributes(row.label)
            if runtime.catalog.set_caption(record.id, label_caption(row.label), "dataset", attributes=attributes):
                report.captioned += 1
    if ingest.interrupted:
        report.interrupted = True
        raise CancelledError("The demo import was interrupted.")
