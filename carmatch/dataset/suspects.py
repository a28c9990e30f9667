"""Likely caption mistakes: a suspect score per captioned image, most suspect first, with the reason.

The evidence is what the catalog already has, under the active model:

* **Image and caption disagree.** Against a fixed random sample of the collection's captions
  (``REFERENCE_SIZE``), the share that fit the image better than its own caption, and the share of
  sampled images that fit the caption better than its own image. A right caption ranks near the top
  for its image and the other way round; a wrong one does not.
* **The attribute the caption states fits another value better.** For colour and body type, each
  value's centroid of caption vectors ("the red captions"); an image whose stated value's centroid
  scores below another value's gets that margin as evidence ("caption says red; image matches
  'blue' captions better"). Margins are ranked over the collection, so the score is comparable
  between models.
* **The caption contradicts its own attributes.** The caption names a colour or body type and its
  structured attribute names a different one (no model needed; these sort first).

The score is in [0, 1]: the mean of the disagreement and the best attribute evidence scaled into
[0, 0.89], or 0.9 plus a tenth of that mean for a contradiction (so contradictions always sort first). Computed over
the whole collection with progress and cached per model and caption version
(:mod:`carmatch.dataset.curation_cache`).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from carmatch.catalog import Catalog, ImageRecord
from carmatch.dataset.curation_cache import (
    TextEncoder,
    caption_vectors,
    caption_version,
    load_result,
    save_result,
)
from carmatch.progress import Progress, no_progress

log = logging.getLogger(__name__)

REFERENCE_SIZE = 1024  # captions and images each image is compared with
MIN_VALUE_SUPPORT = 3  # captions a value needs before its centroid counts as evidence
CONTRADICTION_FLOOR = 0.9
MODEL_CEILING = 0.89  # the highest score model evidence alone gives
ROW_CHUNK = 4096
REVIEWABLE_STATES = ("unreviewed", "approved")  # rejected captions are already known to be wrong
COLOR_WORDS = {
    **{w: w for w in ("red", "blue", "green", "yellow", "black", "white", "silver", "orange", "brown")},
    **{w: w for w in ("beige", "gold", "purple", "pink", "maroon", "tan", "bronze", "teal", "burgundy")},
    "grey": "grey",
    "gray": "grey",
}
BODY_WORDS = {  # caption word -> canonical body type; compatible spellings share one
    "sedan": "sedan",
    "saloon": "sedan",
    "hatchback": "hatchback",
    "wagon": "wagon",
    "estate": "wagon",
    "suv": "suv",
    "crossover": "suv",
    "pickup": "pickup",
    "truck": "pickup",
    "van": "van",
    "minivan": "van",
    "coupe": "coupe",
    "convertible": "convertible",
    "cabriolet": "convertible",
    "bus": "bus",
    "motorcycle": "motorcycle",
}
VOCABULARY = {"color": COLOR_WORDS, "body_type": BODY_WORDS}
LABELS = {"color": "colour", "body_type": "body type"}
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Suspect:
    """One captioned image, how suspect its caption is (0-1) and why."""

    image_id: str
    path: str
    score: float
    reason: str
    caption: str
    review_state: str

    def to_dict(self) -> dict[str, Any]:
        """As JSON (the CLI's ``--json``, the cache)."""
        return asdict(self)


@dataclass(frozen=True)
class SuspectReport:
    """Every reviewable captioned image, most suspect first; ``skipped`` had no embedding yet."""

    suspects: list[Suspect]
    model_key: str
    skipped: int
    from_cache: bool


def named_values(text: str | None, attribute: str) -> set[str]:
    """The canonical colours or body types a text names (``"dark blue pickup truck"`` -> ``{"blue"}``)."""
    words = VOCABULARY[attribute]
    return {words[w] for w in _WORD.findall((text or "").lower()) if w in words}


def stated_value(record: ImageRecord, attribute: str) -> str | None:
    """The one canonical value a record's attribute states (None when it names none or several)."""
    values = named_values(str(record.attributes.get(attribute) or ""), attribute)
    return next(iter(values)) if len(values) == 1 else None


def contradiction(record: ImageRecord) -> str | None:
    """A sentence when the caption names a colour or body type its attributes do not, else None."""
    for attribute in VOCABULARY:
        stated = stated_value(record, attribute)
        said = named_values(record.caption, attribute)
        if stated and said and stated not in said:
            return f"caption says {' / '.join(sorted(said))}; its {LABELS[attribute]} attribute says {stated}"
    return None


def disagreement(images: np.ndarray, texts: np.ndarray, seed: int = 0) -> np.ndarray:
    """Per pair, the mean share of sampled captions (images) that fit its image (caption) better than its own."""
    n = len(images)
    if n < 2:
        return np.zeros(n, dtype=np.float32)
    ref = np.random.default_rng(seed).choice(n, size=min(n, REFERENCE_SIZE), replace=False)
    own = np.einsum("ij,ij->i", images, texts)
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, ROW_CHUNK):
        rows = slice(start, start + ROW_CHUNK)
        better_captions = (images[rows] @ texts[ref].T > own[rows, None]).sum(axis=1)
        better_images = (texts[rows] @ images[ref].T > own[rows, None]).sum(axis=1)
        out[rows] = (better_captions + better_images) / (2.0 * (len(ref) - 1))
    return np.clip(out, 0.0, 1.0)


def attribute_margins(
    records: Sequence[ImageRecord], images: np.ndarray, texts: np.ndarray, attribute: str
) -> tuple[np.ndarray, list[str | None]]:
    """Per image: best other value's centroid score minus its stated value's (NaN without evidence), and that value."""
    stated = [stated_value(r, attribute) for r in records]
    margins = np.full(len(records), np.nan, dtype=np.float32)
    rivals: list[str | None] = [None] * len(records)
    support = Counter(v for v in stated if v)
    values = sorted(v for v, n in support.items() if n >= MIN_VALUE_SUPPORT)
    if len(values) < 2:
        return margins, rivals
    centroids = np.stack([texts[[i for i, v in enumerate(stated) if v == value]].mean(axis=0) for value in values])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True) + 1e-12
    column = {value: c for c, value in enumerate(values)}
    labelled = [i for i, v in enumerate(stated) if v in column]
    sims = images[labelled] @ centroids.T
    own = sims[np.arange(len(labelled)), [column[str(stated[i])] for i in labelled]]
    masked = sims.copy()
    masked[np.arange(len(labelled)), [column[str(stated[i])] for i in labelled]] = -np.inf
    best = masked.argmax(axis=1)
    margins[labelled] = masked[np.arange(len(labelled)), best] - own
    for row, i in enumerate(labelled):
        rivals[i] = values[best[row]]
    return margins, rivals


def _rank(values: np.ndarray) -> np.ndarray:
    """Each finite value's rank in (0, 1] among the finite ones (NaN stays NaN)."""
    out = np.full(len(values), np.nan, dtype=np.float32)
    finite = np.flatnonzero(np.isfinite(values))
    if len(finite):
        order = values[finite].argsort(kind="stable")
        out[finite[order]] = (np.arange(len(finite)) + 1) / len(finite)
    return out


def score_suspects(records: Sequence[ImageRecord], images: np.ndarray, texts: np.ndarray) -> list[Suspect]:
    """Every record scored, most suspect first (rows of ``images``/``texts`` are its unit vectors)."""
    n = len(records)
    if n == 0:
        return []
    apart = disagreement(images, texts)
    evidence: dict[str, tuple[np.ndarray, np.ndarray, list[str | None]]] = {}
    for attribute in VOCABULARY:
        margins, rivals = attribute_margins(records, images, texts, attribute)
        evidence[attribute] = (margins, _rank(margins), rivals)
    out = []
    for i, record in enumerate(records):
        ranks = [evidence[a][1][i] for a in VOCABULARY if np.isfinite(evidence[a][1][i])]
        base = float((apart[i] + max(ranks)) / 2 if ranks else apart[i])
        said = contradiction(record)
        score = CONTRADICTION_FLOOR + (1 - CONTRADICTION_FLOOR) * base if said else MODEL_CEILING * base
        out.append(
            Suspect(
                record.id,
                record.path,
                round(score, 4),
                said or _model_reason(record, i, float(apart[i]), evidence),
                str(record.caption),
                record.review_state,
            )
        )
    out.sort(key=lambda s: (-s.score, s.image_id))
    return out


def _model_reason(
    record: ImageRecord, i: int, apart: float, evidence: dict[str, tuple[np.ndarray, np.ndarray, list[str | None]]]
) -> str:
    """The strongest model evidence against a caption, as one phrase."""
    worst = max(
        (a for a in VOCABULARY if np.isfinite(evidence[a][0][i]) and evidence[a][0][i] > 0),
        key=lambda a: evidence[a][0][i],
        default=None,
    )
    if worst is not None:
        return f"caption says {stated_value(record, worst)}; image matches '{evidence[worst][2][i]}' captions better"
    if apart >= 0.5:
        return f"{apart:.0%} of other captions fit this image better than its own"
    return f"no strong disagreement ({apart:.0%} of other captions fit this image better)"


def cached_scores(home: Path, model_key: str) -> dict[str, float]:
    """The newest computed suspect score of each image under ``model_key``, even if captions changed since."""
    cached = load_result(home, "suspects", model_key, None)
    try:
        return {row["image_id"]: float(row["score"]) for row in (cached or {}).get("suspects", [])}
    except (KeyError, TypeError, ValueError, AttributeError):
        return {}


def reviewable_records(catalog: Catalog) -> list[ImageRecord]:
    """Every live captioned image not rejected, by id."""
    return list(catalog.iter_captioned(REVIEWABLE_STATES))


def image_vectors(catalog: Catalog, model_key: str, records: Sequence[ImageRecord]) -> dict[str, np.ndarray]:
    """The cached image embeddings of ``records`` under ``model_key`` (those that have one)."""
    return catalog.get_embeddings(model_key, [r.id for r in records])


def find_suspects(
    catalog: Catalog,
    encoder: TextEncoder,
    home: Path,
    progress: Progress = no_progress,
    cancelled: Callable[[], bool] = lambda: False,
    refresh: bool = False,
) -> SuspectReport:
    """The collection's suspects under ``encoder``'s model: cached unless the model or a caption changed."""
    key = encoder.model_key
    records = reviewable_records(catalog)
    version = caption_version(records)
    cached = None if refresh else load_result(home, "suspects", key, version)
    if cached is not None:
        return SuspectReport([Suspect(**row) for row in cached["suspects"]], key, cached["skipped"], True)
    progress(0, max(1, len(records)), "reading image embeddings")
    vectors = image_vectors(catalog, key, records)
    usable = [r for r in records if r.id in vectors]
    if len(usable) < len(records):
        log.warning(
            "%d captioned images have no embedding under %s yet; index them first", len(records) - len(usable), key
        )
    texts = caption_vectors(home, encoder, usable, progress, cancelled)
    images = np.stack([vectors[r.id] for r in usable]) if usable else np.zeros((0, 1), dtype=np.float32)
    progress(0, 1, "scoring captions")
    suspects = score_suspects(usable, images, texts)
    progress(1, 1, "scoring captions")
    skipped = len(records) - len(usable)
    save_result(home, "suspects", key, version, {"suspects": [s.to_dict() for s in suspects], "skipped": skipped})
    return SuspectReport(suspects, key, skipped, False)
