"""Partial-description retrieval: queries built from attribute subsets, scored by precision@k and recall@k.

For a split's images, every combination of phrased attribute values that some image has, over the
key sets of :data:`QUERY_KEYS`, becomes a query ("a red suv", "a suv facing left", "a red car").
An image is *relevant* to a query when its attributes say the same words for every key of the
query; images that do not name one of the query's attributes are left out of that query's ranking
(unknown, neither right nor wrong). A query counts only when it has at least one relevant and one
irrelevant image. precision@k = relevant images in the top k / k (so a query with fewer than k
matching images cannot reach 1); recall@k = relevant images in the top k / all relevant images.
Both are averaged over queries. Queries whose combination never appears among the training
images (``seen``) are also scored on their own: the held-out combinations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from carmatch.training.attributes import describe

QUERY_KEYS: tuple[tuple[str, ...], ...] = (
    ("color", "body_type"),
    ("body_type", "viewpoint"),
    ("color", "body_type", "viewpoint"),
    ("color",),
    ("body_type",),
    ("make",),
    ("make", "model"),
)
PARTIAL_KS = (1, 5, 10)


@dataclass(frozen=True)
class Query:
    """One partial description: the attribute words it asks for, and its text."""

    words: tuple[tuple[str, str], ...]  # (key, words) sorted by key

    @property
    def text(self) -> str:
        """What a person would type: "a red suv"."""
        return describe(dict(self.words))

    def judge(self, image_words: Sequence[Mapping[str, str]] | Columns) -> tuple[np.ndarray, np.ndarray]:
        """(relevant, candidate) masks over the images: candidates name every attribute of the query."""
        columns = image_words if isinstance(image_words, Columns) else Columns(image_words)
        candidate = np.ones(columns.size, dtype=bool)
        relevant = np.ones(columns.size, dtype=bool)
        for key, value in self.words:
            column = columns.of(key)
            candidate &= column != ""
            relevant &= column == value
        return relevant, candidate


class Columns:
    """The images' attribute words as one array per key ("" where an image does not name it), for fast masks."""

    def __init__(self, image_words: Sequence[Mapping[str, str]]):
        self.size = len(image_words)
        keys = {key for words in image_words for key in words}
        self.columns = {key: np.array([w.get(key, "") for w in image_words], dtype=object) for key in keys}

    def of(self, key: str) -> np.ndarray:
        """The words every image has for ``key``."""
        return self.columns.get(key, np.full(self.size, "", dtype=object))


def build_queries(
    image_words: Sequence[Mapping[str, str]], key_sets: Sequence[tuple[str, ...]] = QUERY_KEYS
) -> list[Query]:
    """Every attribute combination of the images over ``key_sets`` that separates some images from others."""
    queries: list[Query] = []
    columns = Columns(image_words)
    for keys in key_sets:
        combos = sorted({tuple((k, w[k]) for k in sorted(keys)) for w in image_words if all(k in w for k in keys)})
        for combo in combos:
            query = Query(combo)
            relevant, candidate = query.judge(columns)
            if relevant.any() and (candidate & ~relevant).any():
                queries.append(query)
    return queries


def is_seen(query: Query, seen_words: Sequence[Mapping[str, str]] | Columns) -> bool:
    """True when some image of ``seen_words`` (the training images) has the query's combination."""
    return bool(query.judge(seen_words)[0].any())


def query_scores(
    image_vecs: np.ndarray, query_vecs: np.ndarray, queries: Sequence[Query], image_words: Sequence[Mapping[str, str]]
) -> dict[int, np.ndarray]:
    """Per query, precision@k and recall@k for each k of PARTIAL_KS: ``{k: (queries, 2) array}``."""
    out = {k: np.zeros((len(queries), 2)) for k in PARTIAL_KS}
    columns = Columns(image_words)
    for n, query in enumerate(queries):
        relevant, candidate = query.judge(columns)
        scores = image_vecs[candidate] @ query_vecs[n]
        ranked = relevant[candidate][np.argsort(-scores, kind="stable")]
        for k in PARTIAL_KS:
            hits = float(ranked[:k].sum())
            out[k][n] = (hits / k, hits / float(relevant.sum()))
    return out


def partial_metrics(
    image_vecs: np.ndarray,
    query_vecs: np.ndarray,
    queries: Sequence[Query],
    image_words: Sequence[Mapping[str, str]],
    seen_words: Sequence[Mapping[str, str]] | None = None,
) -> dict[str, float]:
    """``attr_p{k}``, ``attr_r{k}`` and ``attr_queries``; with ``seen_words`` also ``attr_unseen_*``."""
    if not queries:
        return {"attr_queries": 0.0}
    scores = query_scores(image_vecs, query_vecs, queries, image_words)
    groups = {"attr": np.ones(len(queries), dtype=bool)}
    if seen_words is not None:
        seen_columns = Columns(seen_words)
        groups["attr_unseen"] = np.array([not is_seen(q, seen_columns) for q in queries], dtype=bool)
    metrics: dict[str, float] = {}
    for prefix, mask in groups.items():
        metrics[f"{prefix}_queries"] = float(mask.sum())
        if not mask.any():
            continue
        for k in PARTIAL_KS:
            metrics[f"{prefix}_p{k}"] = float(scores[k][mask, 0].mean())
            metrics[f"{prefix}_r{k}"] = float(scores[k][mask, 1].mean())
    return metrics
