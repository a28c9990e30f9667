"""Traffic frames in: every car of a frame becomes an image of its own, a crop linked to its frame and box.

``carmatch ingest FOLDER --cars`` finds the cars with the detector (:mod:`carmatch.ingest.detector`);
``--boxes FILE`` takes them from another detector's or an annotation tool's file (:mod:`carmatch.ingest.boxes`).
Each car is cut out of the full-resolution frame, written once under ``crops_dir`` (its id is the SHA-256 of
the crop's bytes, as every image's id is), and linked to its frame in the catalog before the usual pipeline
embeds it; a frame with no car is ingested whole. Resumable: a frame already cut is not looked at again, and
its crops are embedded if an interruption left them behind.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from carmatch.atomic import write_bytes
from carmatch.catalog import CropLink
from carmatch.config import Settings
from carmatch.errors import CancelledError, ImageError, InvalidInputError
from carmatch.images import LoadedImage, decode_image, read_image_bytes, sha256_bytes
from carmatch.ingest.boxes import BoxFile, Detection, read_box_file
from carmatch.ingest.detector import Detector, detector_settings, load_detector
from carmatch.ingest.pipeline import Ingestor, IngestReport, find_images, read_captions_csv
from carmatch.progress import Progress, no_progress

log = logging.getLogger(__name__)

CROP_JPEG_QUALITY = 95
DETECT_BATCH = 4  # frames per detector call: full-resolution frames are large


@dataclass
class FrameReport:
    """What a traffic-frame ingest did: frames, cars cut out, refused boxes, and the embedding pipeline's report."""

    frames: int = 0
    with_cars: int = 0
    crops: int = 0
    whole: int = 0  # frames without a car: ingested as whole images
    known: int = 0  # frames cut into cars by an earlier run
    deleted: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ingest: IngestReport = field(default_factory=IngestReport)
    interrupted: bool = False

    def summary(self) -> str:
        """A few lines a person reads at the end."""
        lines = [
            f"Frames: {self.frames} looked at, {self.with_cars} with cars ({self.crops} car(s) cut out), "
            f"{self.whole} without a car (kept whole), {self.known} cut earlier."
        ]
        if self.deleted:
            lines.append(f"{self.deleted} frame(s) were deleted from the collection earlier and stay deleted.")
        for where, why in self.refused[:50]:
            lines.append(f"  box refused {where}: {why}")
        if len(self.refused) > 50:
            lines.append(f"  ... and {len(self.refused) - 50} more boxes refused")
        for path, why in self.skipped[:50]:
            lines.append(f"  skipped {path}: {why}")
        lines.append(self.ingest.summary())
        if self.interrupted and not self.ingest.interrupted:
            lines.append("Interrupted: everything above is saved; run the same command again to resume.")
        return "\n".join(lines)


@dataclass
class _Frame:
    path: Path
    rel: str
    root: Path
    size: int
    mtime: float
    loaded: LoadedImage


class FrameIngestor:
    """Cuts the cars out of traffic frames and hands crops (and car-less frames) to the ingest pipeline."""

    def __init__(
        self,
        ingestor: Ingestor,
        crops_dir: Path,
        detector: Detector | None = None,
        box_file: BoxFile | None = None,
    ):
        if (detector is None) == (box_file is None):
            raise ValueError("a FrameIngestor needs a detector or a box file, not both")
        self.ingestor = ingestor
        self.catalog = ingestor.catalog
        self.crops_dir = Path(crops_dir)
        self.detector = detector
        self.box_file = box_file
        self.boxes_from = detector.name if detector is not None else box_file.source  # type: ignore[union-attr]

    def ingest_folder(
        self,
        folder: Path,
        captions_csv: Path | None = None,
        progress: Progress = no_progress,
        cancel: threading.Event | None = None,
    ) -> FrameReport:
        """Ingest every image under ``folder`` as a traffic frame; resumable."""
        root = Path(folder).expanduser().resolve()
        caption_rows = read_captions_csv(captions_csv) if captions_csv else []
        if not root.is_dir():
            raise InvalidInputError(f"{root} is not a folder")
        return self.ingest_paths(find_images(root), root, caption_rows, progress, cancel)

    def ingest_paths(
        self,
        paths: Sequence[Path],
        root: Path,
        caption_rows: Sequence[tuple[str, str]] = (),
        progress: Progress = no_progress,
        cancel: threading.Event | None = None,
    ) -> FrameReport:
        """Ingest these files (under ``root``) as traffic frames; resumable."""
        root = Path(root).resolve()
        paths = [Path(p) for p in paths]
        report = FrameReport(frames=len(paths))
        if self.box_file is not None:
            named = {self.box_file.key_of(str(p.resolve().relative_to(root))) for p in paths}
            for key in sorted(self.box_file.keys() - named):
                report.refused.append((key, "unknown file: no image of that name under the folder"))
            report.refused.extend(self.box_file.refused)
        whole: list[Path] = []
        crops: list[Path] = []
        try:
            self._cut(paths, root, report, whole, crops, progress, cancel)
        except (KeyboardInterrupt, CancelledError):
            report.interrupted = True
        # The pipeline embeds what was cut so far even after an interruption (it is resumable itself).
        report.ingest = self.ingestor.ingest_paths(whole, root, caption_rows, progress, cancel)
        if crops and not report.ingest.interrupted:
            crop_report = self.ingestor.ingest_paths(crops, None, (), progress, cancel)
            report.ingest.add(crop_report)
        report.interrupted = report.interrupted or report.ingest.interrupted
        return report

    def _cut(
        self,
        paths: Sequence[Path],
        root: Path,
        report: FrameReport,
        whole: list[Path],
        crops: list[Path],
        progress: Progress,
        cancel: threading.Event | None,
    ) -> None:
        pending: list[_Frame] = []
        for n, path in enumerate(paths, 1):
            frame = self._open(path, root, report, whole, crops)
            if frame is not None:
                pending.append(frame)
            if len(pending) >= DETECT_BATCH or (n == len(paths) and pending):
                self._detect_and_cut(pending, report, whole, crops)
                pending = []
            progress(n, len(paths), "finding cars")
            if cancel is not None and cancel.is_set():
                raise CancelledError("cancelled")

    def _open(self, path: Path, root: Path, report: FrameReport, whole: list[Path], crops: list[Path]) -> _Frame | None:
        """A frame to look for cars in, or None when it was handled (known, deleted, unreadable, or a known image)."""
        resolved = path.resolve()
        try:
            stat = resolved.stat()
        except OSError as exc:
            report.skipped.append((str(path), f"cannot read ({exc.strerror or exc})"))
            return None
        known = self.catalog.lookup_file(str(resolved), stat.st_size, stat.st_mtime)
        if known is not None and self._settled(known, report, whole, crops, resolved):
            return None
        limits = self.ingestor.limits
        try:
            data = read_image_bytes(resolved, limits.max_bytes)
            loaded = decode_image(data, resolved.name, limits.max_pixels, limits.max_bytes)  # full size: crops
        except ImageError as exc:
            report.skipped.append((str(path), str(exc).split(": ", 1)[-1]))
            return None
        if self._settled(loaded.sha256, report, whole, crops, resolved):
            self.catalog.remember_file(str(resolved), stat.st_size, stat.st_mtime, loaded.sha256)
            return None
        return _Frame(resolved, str(resolved.relative_to(root)), root, stat.st_size, stat.st_mtime, loaded)

    def _settled(self, image_id: str, report: FrameReport, whole: list[Path], crops: list[Path], path: Path) -> bool:
        """True when ``image_id`` is a frame cut before or an image already in the collection (kept as it is)."""
        state = self.catalog.frame_state(image_id)
        if state == "deleted":
            report.deleted += 1
            return True
        if state == "live":
            report.known += 1
            links = self.catalog.crop_links(self.catalog.frame_crop_ids([image_id]))
            crops.extend(self.crop_path(i) for i in links if self.crop_path(i).is_file())
            return True
        if self.catalog.is_deleted(image_id) or self.catalog.get_many([image_id]):
            whole.append(path)  # an image ingested whole before stays whole (the pipeline counts it present)
            return True
        return False

    def _detect_and_cut(self, frames: list[_Frame], report: FrameReport, whole: list[Path], crops: list[Path]) -> None:
        if self.detector is not None:
            found = self.detector.detect([f.loaded.image for f in frames])
        else:
            found = []
            for f in frames:
                boxes, refused = self.box_file.for_image(f.rel, f.loaded.width, f.loaded.height)  # type: ignore[union-attr]
                report.refused.extend(refused)
                found.append(boxes)
        for frame, detections in zip(frames, found):
            if not detections:
                report.whole += 1
                whole.append(frame.path)
                continue
            links = [self._write_crop(frame, det) for det in detections]
            links = list({link.image_id: link for link in links}.values())  # two identical boxes: one crop
            self.catalog.add_frame(
                frame.loaded.sha256,
                str(frame.path),
                frame.loaded.width,
                frame.loaded.height,
                self.boxes_from,
                links,
                str(frame.root),
                frame.rel,
            )
            self.catalog.remember_file(str(frame.path), frame.size, frame.mtime, frame.loaded.sha256)
            report.with_cars += 1
            report.crops += len(links)
            crops.extend(self.crop_path(link.image_id) for link in links)

    def _write_crop(self, frame: _Frame, det: Detection) -> CropLink:
        """Cut one car out of the frame, write it once, and return its link."""
        crop = frame.loaded.image.crop(det.box.as_tuple()).convert("RGB")
        buf = io.BytesIO()
        crop.save(buf, format="JPEG", quality=CROP_JPEG_QUALITY)
        data = buf.getvalue()
        crop_id = sha256_bytes(data)
        target = self.crop_path(crop_id)
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(target, data)
        return CropLink(crop_id, frame.loaded.sha256, det.box.as_tuple(), det.score, self.boxes_from, det.label)

    def crop_path(self, crop_id: str) -> Path:
        """Where a crop's file lives."""
        return self.crops_dir / crop_id[:2] / f"{crop_id}.jpg"


def frame_ingestor(
    ingestor: Ingestor, settings: Settings, cars: bool = False, boxes: Path | None = None
) -> FrameIngestor | None:
    """The traffic-frame ingest the options and settings ask for, or None for whole images.

    ``boxes`` (a COCO JSON file or a folder of YOLO txt files) wins over the detector; ``cars`` turns the
    detector on for one run; CARMATCH_DETECTOR turns it on for every ingest.
    """
    if boxes is not None:
        if cars:
            raise InvalidInputError("Give --cars or --boxes, not both: boxes from a file replace the detector.")
        return FrameIngestor(ingestor, settings.crops_dir, box_file=read_box_file(boxes))
    chosen = detector_settings(settings, cars)
    if chosen is None:
        return None
    return FrameIngestor(ingestor, settings.crops_dir, detector=load_detector(chosen))
