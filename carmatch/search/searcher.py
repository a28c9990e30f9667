"""Search: text, image, or a weighted blend of both, over the index, with catalog filters."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from carmatch.bounds import check_number
from carmatch.catalog import Catalog
from carmatch.embedding.embedder import Embedder
from carmatch.errors import EmptyCollectionError, InvalidInputError
from carmatch.images import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, ImageSource, load_image
from carmatch.stores.store import SearchIndex, normalize_where

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 2_000
MAX_K = 200
DEFAULT_IMAGE_WEIGHT = 0.5


@dataclass
class SearchResult:
    """One match: the image, its similarity to the query and its caption."""

    id: str
    path: str
    score: float
    caption: str | None
    frame: str | None = None  # a car cut from a traffic frame: the frame's id ...
    frame_path: str | None = None  # ... its file ...
    box: list[int] | None = None  # ... the car's box in it, [x0, y0, x1, y1] in pixels ...
    detector_score: float | None = None  # ... and how sure the detector (or the boxes file) was

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of a result: id, path, score, caption, and frame, frame_path, box, detector_score."""
        return asdict(self)


@dataclass
class SearchResponse:
    """Matches, best first, plus notes about how the query was read (e.g. truncation)."""

    results: list[SearchResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def clean_text_query(text: str | None) -> str | None:
    """Strip a text query; None when it holds nothing but whitespace."""
    if text is None:
        return None
    text = " ".join(text.split())
    return text or None


def check_query(text: str | None, image: object | None, k: int, image_weight: float) -> str | None:
    """Refuse a query that cannot be answered, before any model is loaded; returns the cleaned text."""
    query_text = clean_text_query(text)
    if text is not None and query_text is None and image is None:
        raise InvalidInputError(
            field="text",
            value=text,
            label="The description",
            reason="is empty: type what the car looks like, or give a photo",
        )
    if query_text is None and image is None:
        raise InvalidInputError("Nothing to search for: give a description, a photo, or both.")
    check_number(k, "k", 1, MAX_K, integer=True, label="The number of results")
    check_number(image_weight, "image_weight", 0, 1, label="The image weight")
    return query_text


class Searcher:
    """Answers queries from an embedder, an index and the catalog, all passed in."""

    def __init__(
        self,
        embedder: Embedder,
        index: SearchIndex,
        catalog: Catalog,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    ):
        if index.manifest.model_key != embedder.model_key:
            from carmatch.errors import ModelMismatchError

            raise ModelMismatchError(
                f"The index was built by {index.manifest.model_key}, the model is {embedder.model_key}. "
                "Rebuild the index: .venv/bin/carmatch index rebuild"
            )
        self.embedder = embedder
        self.index = index
        self.catalog = catalog
        self.max_image_bytes = max_image_bytes
        self.max_image_pixels = max_image_pixels

    def text_vector(self, text: str) -> tuple[np.ndarray, list[str]]:
        """Embed a text query; returns the vector and notes (e.g. it was truncated)."""
        notes: list[str] = []
        if len(text) > MAX_QUERY_CHARS:
            text = text[:MAX_QUERY_CHARS]
            notes.append(f"The description was cut to its first {MAX_QUERY_CHARS} characters.")
        tokens = self.embedder.count_tokens(text)
        if tokens > self.embedder.context_length:
            notes.append(
                f"The description is {tokens} tokens long; the model reads only the first "
                f"{self.embedder.context_length}, so the rest was ignored."
            )
        return self.embedder.encode_texts([text])[0], notes

    def image_vector(self, image: ImageSource) -> np.ndarray:
        """Embed an image query (path, bytes or PIL image), validated first."""
        side = self.embedder.image_side  # a JPEG decoded as ingest decodes it
        loaded = load_image(image, self.max_image_pixels, self.max_image_bytes, side)
        return self.embedder.encode_images([loaded.image])[0]

    def search(
        self,
        text: str | None = None,
        image: ImageSource | None = None,
        k: int = 12,
        image_weight: float = DEFAULT_IMAGE_WEIGHT,
        where: dict[str, str] | None = None,
    ) -> SearchResponse:
        """Find the ``k`` images most similar to a text, an image, or both blended.

        With both, the query is ``(1 - image_weight) * text + image_weight * image`` of the two
        unit vectors, renormalised. ``where`` filters on catalog fields (see Catalog.filter_ids).
        """
        query_text = check_query(text, image, k, image_weight)
        notes: list[str] = []
        parts: list[tuple[float, np.ndarray]] = []
        if image is not None:
            parts.append((float(image_weight) if query_text else 1.0, self.image_vector(image)))
        if query_text is not None:
            vec, text_notes = self.text_vector(query_text)
            notes.extend(text_notes)
            parts.append((1.0 - float(image_weight) if image is not None else 1.0, vec))
        query = sum(weight * vec for weight, vec in parts)
        if float(np.linalg.norm(query)) < 1e-8:  # e.g. weight 0 on the only informative part
            query = parts[-1][1]
        hits = self._nearest(np.asarray(query, dtype=np.float32), int(k), where, notes)
        if not hits and len(self.index) == 0:  # counted only then: a count is a round trip on a Milvus server
            raise EmptyCollectionError(
                "The collection is empty: add images first (.venv/bin/carmatch ingest DIR, or the Dataset tab)."
            )
        records = self.catalog.get_many([image_id for image_id, _ in hits])
        results = [
            SearchResult(image_id, records[image_id].path, round(score, 4), records[image_id].caption)
            for image_id, score in hits
            if image_id in records
        ]
        add_frames(self.catalog, results)
        return SearchResponse(results, notes)

    def _nearest(
        self, query: np.ndarray, k: int, where: dict[str, str] | None, notes: list[str]
    ) -> list[tuple[str, float]]:
        """Ask the index; filters go inside the store when it keeps those fields, else as catalog ids."""
        clean = normalize_where(where)
        if clean and set(clean) <= set(self.index.filter_fields):
            hits = self.index.search(query, k, where=clean)  # one store query with a filter expression
        else:
            allowed = self.catalog.filter_ids(where) if where else None
            if allowed is not None and not allowed:
                notes.append("No image matches the filters.")
                return []
            hits = self.index.search(query, k, allowed)
        if clean and not hits:
            notes.append("No image matches the filters.")
        return hits


def add_frames(catalog: Catalog, results: list[SearchResult]) -> None:
    """Fill in the frame and box of the results that are cars cut from traffic frames."""
    links = catalog.crop_links([r.id for r in results])
    if not links:
        return
    paths = catalog.frame_paths(link.frame_id for link in links.values())
    for result in results:
        link = links.get(result.id)
        if link is not None:
            result.frame = link.frame_id
            result.frame_path = paths.get(link.frame_id)
            result.box = list(link.box)
            result.detector_score = link.score
