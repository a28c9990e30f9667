"""Getting training batches to the model: one decode per image at the size the model needs, ahead of the step.

The catalog hashed and validated each image when it was ingested, so a training step does not hash
it again: :func:`read_training_image` reads the file once, refuses what ingest refuses from its size
and header (empty, over the byte or pixel limit, a format carmatch does not read) and decodes a JPEG
with Pillow's ``draft`` at the smallest DCT scale that still covers the model's input after the
random crop. :class:`BatchLoader` makes the epoch's batches ahead of the step, in one
background thread (Pillow and torch release the GIL while they decode and resize) or, when asked, in
worker processes (torch's ``DataLoader``).
"""

from __future__ import annotations

import io
import logging
import math
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from carmatch.images import DRAFT_FORMATS, check_header, pillow_errors, read_image_bytes

log = logging.getLogger(__name__)

PREFETCH_BATCHES = 2  # batches the loading thread makes ahead of the step
QUEUE_POLL_SECONDS = 0.1  # how often a blocked loading thread looks whether the epoch was stopped


def draft_side(image_side: int | None, crop_scale_min: float = 1.0, crop_ratio_max: float = 1.0) -> int | None:
    """The shortest side a decode may shrink an image to so that any random crop still covers ``image_side``.

    A crop keeps at least ``crop_scale_min`` of the area at an aspect up to ``crop_ratio_max``, so its
    short side is at least sqrt(scale / ratio) of the image's: the decode keeps that much more.
    """
    if image_side is None:
        return None
    return math.ceil(image_side * math.sqrt(max(crop_ratio_max, 1.0) / min(max(crop_scale_min, 1e-3), 1.0)))


def read_training_image(path: str | Path, side: int | None, max_pixels: int, max_bytes: int) -> Any:
    """An RGB image of a catalogued file, decoded once at no less than ``side`` pixels on its short side.

    Refuses (ImageError) what ingest refuses (:func:`carmatch.images.read_image_bytes` and
    :func:`carmatch.images.check_header`), and a corrupt or truncated file; does not hash it.
    """
    from PIL import Image, ImageOps

    name = Path(path).name
    data = read_image_bytes(Path(path), max_bytes)
    with pillow_errors(name):
        with Image.open(io.BytesIO(data)) as opened:
            if check_header(opened, name, max_pixels) in DRAFT_FORMATS and side is not None:
                opened.draft("RGB", (side, side))
            opened.load()
            upright: Any = ImageOps.exif_transpose(opened) or opened
            return upright.convert("RGB")


class _End:
    """What the loading thread puts last: the end of the epoch, or the error that stopped it."""

    def __init__(self, error: BaseException | None = None):
        self.error = error


class BatchLoader:
    """The epoch's collated batches, made ahead of the step: ``workers`` processes, or one thread when 0.

    Use it as a context manager: leaving it (finished, cancelled or failed) stops the loading.
    """

    def __init__(self, dataset: Any, batches: Sequence[Sequence[Any]], workers: int = 0, pin_memory: bool = False):
        self.dataset = dataset
        self.batches = list(batches)
        self.workers = workers
        self.pin_memory = pin_memory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> BatchLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Any]:
        if self.workers > 0:
            import torch

            yield from torch.utils.data.DataLoader(
                self.dataset,
                batch_sampler=[list(batch) for batch in self.batches],
                num_workers=self.workers,
                pin_memory=self.pin_memory,
            )
            return
        made: queue.Queue[Any] = queue.Queue(maxsize=PREFETCH_BATCHES)
        self._thread = threading.Thread(target=self._fill, args=(made,), name="carmatch-train-loader", daemon=True)
        self._thread.start()
        while not isinstance(item := made.get(), _End):
            yield item
        if item.error is not None:
            raise item.error

    def close(self) -> None:
        """Stop the loading thread (it finishes the image in hand) and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _fill(self, made: queue.Queue[Any]) -> None:
        """The loading thread: collate each batch and queue it, until the last one or until stopped."""
        from torch.utils.data import default_collate

        end = _End()
        try:
            for batch in self.batches:
                items = []
                for key in batch:
                    if self._stop.is_set():
                        return
                    items.append(self.dataset[key])
                if not self._put(made, default_collate(items)):
                    return
        except Exception as exc:  # handed to the training thread, which raises it
            end = _End(exc)
        self._put(made, end)

    def _put(self, made: queue.Queue[Any], item: Any) -> bool:
        """Queue ``item`` unless the loader is stopped first; True when queued."""
        while not self._stop.is_set():
            try:
                made.put(item, timeout=QUEUE_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False
