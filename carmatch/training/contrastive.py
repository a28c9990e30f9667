"""One contrastive optimizer step's backward pass, with gradient accumulation over the whole effective batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def backward_group(
    model: Any,
    group: Sequence[tuple[Any, Any]],
    loss_fn: Any,
    scale: Callable[[Any], Any],
    device: str,
    autocast_dtype: Any = None,
) -> float:
    """Backpropagate the contrastive loss of one optimizer step; returns the loss.

    With several micro-batches (gradient accumulation) every image is contrasted with every
    caption of the whole effective batch, as open_clip's ``accum_freq`` does: features of all
    micro-batches are computed without gradients first, then each micro-batch is recomputed with
    gradients and its slice swapped into the full set. The summed gradients equal those of one
    big batch, so a small GPU gets the negatives of a large batch, not just a steadier step.
    """
    import torch

    def features(images: Any, tokens: Any) -> tuple[Any, Any]:
        with torch.autocast("cuda", dtype=autocast_dtype, enabled=autocast_dtype is not None):
            return model.encode_image(images, normalize=True), model.encode_text(tokens, normalize=True)

    batches = [(i.to(device, non_blocking=True), t.to(device, non_blocking=True)) for i, t in group]
    if len(batches) == 1:
        image_features, text_features = features(*batches[0])
        with torch.autocast("cuda", dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = loss_fn(image_features, text_features, model.logit_scale.exp())
        scale(loss).backward()
        return float(loss.detach())
    with torch.no_grad():
        cached = [features(images, tokens) for images, tokens in batches]
    loss_value = 0.0
    for j, (images, tokens) in enumerate(batches):
        image_j, text_j = features(images, tokens)
        all_images = torch.cat([image_j if k == j else c[0] for k, c in enumerate(cached)])
        all_texts = torch.cat([text_j if k == j else c[1] for k, c in enumerate(cached)])
        # the temperature takes its gradient once per step, not once per micro-batch
        logit_scale = model.logit_scale.exp() if j == 0 else model.logit_scale.exp().detach()
        with torch.autocast("cuda", dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = loss_fn(all_images, all_texts, logit_scale)
        scale(loss).backward()
        loss_value = float(loss.detach())
    return loss_value


class MultiPositiveClipLoss:
    """CLIP's symmetric contrastive loss where a text may describe several images of the batch.

    ``positives`` is a (texts, images) mask, True where text i describes image j (its diagonal is
    True); each row's targets are spread evenly over its positives, both ways. Without a mask, or with
    the identity, this is exactly open_clip's ``ClipLoss``.
    """

    def __call__(self, image_features: Any, text_features: Any, logit_scale: Any, positives: Any = None) -> Any:
        """The mean of the image→text and text→image cross-entropies."""
        import torch
        import torch.nn.functional as F

        logits_per_image = logit_scale * image_features @ text_features.T
        n = logits_per_image.shape[0]
        if positives is None:
            labels = torch.arange(n, device=logits_per_image.device)
            return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_image.T, labels)) / 2
        mask = torch.as_tensor(positives, device=logits_per_image.device).to(logits_per_image.dtype)
        text_targets = mask / mask.sum(dim=1, keepdim=True)  # rows: texts
        image_targets = mask.T / mask.T.sum(dim=1, keepdim=True)  # rows: images
        return (
            F.cross_entropy(logits_per_image, image_targets) + F.cross_entropy(logits_per_image.T, text_targets)
        ) / 2
