"""Retrieval evaluation: text→image and image→text recall@1/5/10 and median rank on a split, and
partial-description precision@k / recall@k (queries such as "a red suv", see :mod:`carmatch.training.queries`).

An image counts as relevant to a text when their captions are identical (after whitespace
normalisation). With unique captions this is the usual paired recall; when several images share a
caption ("a red pickup truck") any of them is a correct answer, and image→text ranks the distinct
captions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from carmatch.training.attributes import phrasable
from carmatch.training.data import Pair
from carmatch.training.queries import build_queries, partial_metrics

log = logging.getLogger(__name__)

RECALL_KS = (1, 5, 10)


def _first_relevant_ranks(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """1-based rank of the best-ranked relevant column for each row of ``scores``."""
    order = np.argsort(-scores, axis=1, kind="stable")
    hits = np.take_along_axis(relevant, order, axis=1)
    return hits.argmax(axis=1) + 1


def retrieval_metrics(image_vecs: np.ndarray, text_vecs: np.ndarray, captions: Sequence[str]) -> dict[str, float]:
    """Recall@k and median rank both ways from unit vectors of paired images and captions."""
    captions = [" ".join(c.split()).lower() for c in captions]
    unique = sorted(set(captions))
    position = {c: n for n, c in enumerate(unique)}
    caption_idx = np.array([position[c] for c in captions])
    # one text vector per distinct caption (identical captions embed identically)
    first = {c: n for n, c in reversed(list(enumerate(captions)))}
    uniq_text = text_vecs[[first[c] for c in unique]]
    relevant = caption_idx[None, :] == np.arange(len(unique))[:, None]  # (texts, images)
    t2i = _first_relevant_ranks(uniq_text @ image_vecs.T, relevant)
    i2t = _first_relevant_ranks(image_vecs @ uniq_text.T, relevant.T)
    metrics: dict[str, float] = {"n_images": float(len(captions)), "n_texts": float(len(unique))}
    for k in RECALL_KS:
        metrics[f"t2i_r{k}"] = float((t2i <= k).mean())
        metrics[f"i2t_r{k}"] = float((i2t <= k).mean())
    metrics["t2i_median_rank"] = float(np.median(t2i))
    metrics["i2t_median_rank"] = float(np.median(i2t))
    return metrics


def chance_t2i_recall(captions: Sequence[str], k: int) -> float:
    """Expected text→image recall@k of a model that ranks images at random."""
    from math import comb

    captions = [" ".join(c.split()).lower() for c in captions]
    n = len(captions)
    values = []
    for caption in sorted(set(captions)):
        r = captions.count(caption)
        values.append(1.0 - (comb(n - r, k) / comb(n, k) if k <= n - r else 0.0))
    return float(np.mean(values)) if values else 0.0


def embed_pairs(
    model: Any, preprocess: Any, tokenizer: Any, pairs: Sequence[Pair], device: str, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Unit image and text vectors of ``pairs`` from a raw open_clip model (eval mode, no grad)."""
    import torch
    import torch.nn.functional as F

    from carmatch.images import load_image

    was_training = model.training
    model.eval()
    image_out, text_out = [], []
    try:
        with torch.no_grad():
            for start in range(0, len(pairs), batch_size):
                chunk = pairs[start : start + batch_size]
                images = torch.stack([preprocess(load_image(p.path).image) for p in chunk]).to(device)
                tokens = tokenizer([p.caption for p in chunk]).to(device)
                image_out.append(F.normalize(model.encode_image(images).float(), dim=-1).cpu().numpy())
                text_out.append(F.normalize(model.encode_text(tokens).float(), dim=-1).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(image_out), np.concatenate(text_out)


def embed_texts(model: Any, tokenizer: Any, texts: Sequence[str], device: str, batch_size: int = 64) -> np.ndarray:
    """Unit text vectors of ``texts`` (eval mode, no grad)."""
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                tokens = tokenizer(list(texts[start : start + batch_size])).to(device)
                out.append(F.normalize(model.encode_text(tokens).float(), dim=-1).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out)


def partial_description_metrics(
    model: Any,
    tokenizer: Any,
    image_vecs: np.ndarray,
    pairs: Sequence[Pair],
    device: str,
    batch_size: int = 64,
    seen: Sequence[Pair] | None = None,
) -> dict[str, float]:
    """Precision@k / recall@k of attribute-subset queries over ``pairs``' images (``attr_unseen_*`` given ``seen``)."""
    words = [phrasable(p.attributes) for p in pairs]
    queries = build_queries(words)
    if not queries:
        return {"attr_queries": 0.0}
    query_vecs = embed_texts(model, tokenizer, [q.text for q in queries], device, batch_size)
    seen_words = [phrasable(p.attributes) for p in seen] if seen is not None else None
    return partial_metrics(image_vecs, query_vecs, queries, words, seen_words)


def evaluate_model(
    model: Any,
    preprocess: Any,
    tokenizer: Any,
    pairs: Sequence[Pair],
    device: str,
    batch_size: int = 64,
    seen: Sequence[Pair] | None = None,
) -> dict[str, float]:
    """Full-caption retrieval and partial-description metrics of ``model`` on ``pairs`` (``seen``: training pairs)."""
    if not pairs:
        return {}
    images, texts = embed_pairs(model, preprocess, tokenizer, pairs, device, batch_size)
    metrics = retrieval_metrics(images, texts, [p.caption for p in pairs])
    metrics.update(partial_description_metrics(model, tokenizer, images, pairs, device, batch_size, seen))
    return metrics


def selection_score(metrics: dict[str, float]) -> float:
    """What picks the best epoch: mean text→image recall@1/5/10, averaged with partial-description P@5 if any."""
    recall = (metrics["t2i_r1"] + metrics["t2i_r5"] + metrics["t2i_r10"]) / 3
    return (recall + metrics["attr_p5"]) / 2 if "attr_p5" in metrics else recall


METRIC_LABELS = (
    ("t2i_r1", "text→image R@1"),
    ("t2i_r5", "text→image R@5"),
    ("t2i_r10", "text→image R@10"),
    ("t2i_median_rank", "text→image median rank"),
    ("i2t_r1", "image→text R@1"),
    ("i2t_r5", "image→text R@5"),
    ("i2t_r10", "image→text R@10"),
    ("i2t_median_rank", "image→text median rank"),
    ("attr_queries", "partial-description queries"),
    ("attr_p1", "partial description P@1"),
    ("attr_p5", "partial description P@5"),
    ("attr_r5", "partial description R@5"),
    ("attr_r10", "partial description R@10"),
    ("attr_unseen_queries", "unseen-combination queries"),
    ("attr_unseen_p5", "unseen combinations P@5"),
    ("attr_unseen_r5", "unseen combinations R@5"),
)


def comparison_rows(results: dict[str, dict[str, float]]) -> list[list[str]]:
    """A table (header first) with one column per model, for the CLI and the Training tab."""
    names = list(results)
    rows = [["metric", *names]]
    for key, label in METRIC_LABELS:
        cells = []
        for name in names:
            value = results[name].get(key)
            if value is None:
                cells.append("-")
            elif key.endswith("queries"):
                cells.append(f"{value:.0f}")
            elif key.endswith("median_rank"):
                cells.append(f"{value:.1f}")
            else:
                cells.append(f"{value:.3f}")
        rows.append([label, *cells])
    return rows


def epoch_summary(val_loss: float | None, metrics: dict[str, float], message: str = "") -> str:
    """One line for an epoch's report: validation loss, full-caption recall, partial-description scores."""
    line = (
        f"val loss {val_loss or 0.0:.4f}  text→image R@1 {metrics['t2i_r1']:.3f} R@5 {metrics['t2i_r5']:.3f} "
        f"R@10 {metrics['t2i_r10']:.3f}"
    )
    if "attr_p5" in metrics:
        line += (
            f"  partial descriptions P@5 {metrics['attr_p5']:.3f} R@5 {metrics['attr_r5']:.3f} "
            f"({metrics['attr_queries']:.0f} queries)"
        )
    return f"{line} {message}".rstrip()


def format_table(rows: list[list[str]]) -> str:
    """Plain-text rendering of :func:`comparison_rows`."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def validation_metrics(
    model: Any,
    preprocess: Any,
    tokenizer: Any,
    pairs: Sequence[Pair],
    loss_fn: Any,
    device: str,
    eval_batch_size: int,
    batch_size: int,
    seen: Sequence[Pair] | None = None,
) -> dict[str, float]:
    """Retrieval and partial-description metrics plus ``val_loss``: the contrastive loss in training-size batches."""
    import torch

    images, texts = embed_pairs(model, preprocess, tokenizer, pairs, device, eval_batch_size)
    scale = float(model.logit_scale.detach().exp())
    losses, weights = [], []
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            img = torch.from_numpy(images[start : start + batch_size])
            txt = torch.from_numpy(texts[start : start + batch_size])
            if len(img) >= 2:
                losses.append(float(loss_fn(img, txt, scale)) * len(img))
                weights.append(len(img))
    metrics = retrieval_metrics(images, texts, [p.caption for p in pairs])
    metrics.update(partial_description_metrics(model, tokenizer, images, pairs, device, eval_batch_size, seen))
    metrics["val_loss"] = sum(losses) / max(1, sum(weights))
    return metrics
