"""The catalog: one SQLite file holding images, captions and their history, embeddings, jobs, models.

Every SQL statement carmatch runs lives in this package: ``schema`` (tables and migrations),
``connection`` (the file, transactions, meta), and one module per table family, combined here.

May import: ``carmatch.errors`` and ``carmatch.bounds`` only; every other package builds on it.
"""

from carmatch.catalog.browse import BrowseMixin
from carmatch.catalog.captions import CaptionsMixin
from carmatch.catalog.embeddings import EmbeddingsMixin
from carmatch.catalog.frames import CropLink, FrameRecord, FramesMixin
from carmatch.catalog.images import ImagesMixin
from carmatch.catalog.jobs import JobsMixin
from carmatch.catalog.models import ModelsMixin
from carmatch.catalog.records import HistoryEntry, ImageRecord
from carmatch.catalog.schema import ATTRIBUTE_COLUMNS, CAPTION_SOURCES, REVIEW_STATES, now_iso


class Catalog(ImagesMixin, BrowseMixin, CaptionsMixin, EmbeddingsMixin, JobsMixin, ModelsMixin, FramesMixin):
    """SQLite-backed catalog; safe to share between threads (one connection, one lock)."""


__all__ = [
    "ATTRIBUTE_COLUMNS",
    "CAPTION_SOURCES",
    "REVIEW_STATES",
    "Catalog",
    "CropLink",
    "FrameRecord",
    "HistoryEntry",
    "ImageRecord",
    "now_iso",
]
