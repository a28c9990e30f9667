"""CLIP's text tower cut after the end token: the same vector from ~5 positions instead of 77 for a short query.

open_clip's CLIP text transformer is causal (each position attends only to earlier ones) and reads
the text's vector at the end token, the highest token id. Padding after it cannot change that
vector, so the tower may run on tokens cut after the last end token of the batch. torch's
``nn.MultiheadAttention`` fixes the sequence length when traced for ONNX, so the exported module
below spells the same block out with shapes ONNX keeps open. It is used only after its ONNX export
matches open_clip's own ``encode_text`` (see onnx_towers.export_towers); any other text tower keeps
the full context.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def trim_tokens(tokens: np.ndarray) -> np.ndarray:
    """Tokens cut after the last end token of the batch (the highest id in each row)."""
    if tokens.size == 0:
        return tokens
    return tokens[:, : int(tokens.argmax(axis=1).max()) + 1]


def _fits(model: Any) -> bool:
    """True for open_clip's CLIP text tower: batch-first blocks of packed multi-head attention, argmax pooling."""
    import torch

    needed = ("token_embedding", "positional_embedding", "attn_mask", "ln_final", "transformer")
    if not all(getattr(model, name, None) is not None for name in needed):
        return False
    if getattr(model, "text_pool_type", None) != "argmax" or not getattr(model.transformer, "batch_first", False):
        return False
    for block in getattr(model.transformer, "resblocks", []):
        attn = getattr(block, "attn", None)
        if not isinstance(attn, torch.nn.MultiheadAttention) or attn.in_proj_weight is None:
            return False
        if hasattr(block, "ln_1_kv") or not all(hasattr(block, n) for n in ("ln_1", "ln_2", "mlp", "ls_1", "ls_2")):
            return False
    return True


def short_text_tower(model: Any) -> Any | None:
    """A module computing ``model.encode_text`` on tokens of any length up to the context; None when it does not fit."""
    import torch
    import torch.nn.functional as F

    if not _fits(model):
        return None

    def block(layer: Any, x: Any, mask: Any) -> Any:
        attn = layer.attn
        heads, width = attn.num_heads, attn.embed_dim // attn.num_heads
        q, k, v = F.linear(layer.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.unflatten(-1, (heads, width)).transpose(1, 2) for t in (q, k, v))
        weights = ((q * width**-0.5) @ k.transpose(-1, -2) + mask).softmax(-1)
        x = x + layer.ls_1(attn.out_proj((weights @ v).transpose(1, 2).flatten(2)))
        return x + layer.ls_2(layer.mlp(layer.ln_2(x)))

    class ShortTextTower(torch.nn.Module):
        def __init__(self, clip: Any):
            super().__init__()
            self.clip = clip

        def forward(self, tokens: Any) -> Any:
            clip, length = self.clip, tokens.shape[1]
            x = clip.token_embedding(tokens) + clip.positional_embedding[:length]
            mask = clip.attn_mask[:length, :length].to(x.dtype)
            for layer in clip.transformer.resblocks:
                x = block(layer, x, mask)
            x = clip.ln_final(x)
            x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]
            projection = clip.text_projection
            if projection is None:
                return x
            return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection

    return ShortTextTower(model)
