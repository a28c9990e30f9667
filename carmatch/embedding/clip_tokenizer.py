"""CLIP's BPE tokenizer without torch, so a text query can start without importing it.

open_clip's ``SimpleTokenizer`` (MIT, Copyright (c) 2021 OpenAI, via OpenCLIP) with its default
``clean="lower"``, returning numpy int64 arrays. It reads the vocabulary file open_clip ships, found
without importing open_clip (whose package import pulls in torch and torchvision). Before the fast
path uses it for a model, :func:`matches_open_clip` checks it gives open_clip's tokens.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
MERGES = 49152 - 256 - 2  # open_clip reads this many merge lines
SPECIAL = ("<start_of_text>", "<end_of_text>")
PROBE_TEXTS = (
    "a photo of a car",
    "Dark-blue   HATCHBACK with a roof rack, 2012 &amp; rusty!!",
    "Ünïcödé café — 🚗 SUV",
    "a very long description " * 12,
)


def vocab_path() -> Path | None:
    """open_clip's BPE vocabulary file, located without importing open_clip (None when absent)."""
    spec = importlib.util.find_spec("open_clip")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / VOCAB_FILE
        if path.is_file():
            return path
    return None


@lru_cache
def _bytes_to_unicode() -> dict[int, str]:
    byte_values = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    code_points = byte_values[:]
    extra = 0
    for value in range(256):
        if value not in byte_values:
            byte_values.append(value)
            code_points.append(256 + extra)
            extra += 1
    return dict(zip(byte_values, [chr(c) for c in code_points], strict=True))


def _clean(text: str) -> str:
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).lower()


class ClipTokenizer:
    """Texts to (N, context_length) int64 token arrays, as open_clip's default CLIP tokenizer."""

    def __init__(self, path: Path, context_length: int = 77):
        import regex

        lines = gzip.open(path).read().decode("utf-8").split("\n")[1 : MERGES + 1]
        merges = [tuple(line.split()) for line in lines]
        vocab = list(_bytes_to_unicode().values())
        vocab += [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + list(SPECIAL)
        self.encoder = {token: i for i, token in enumerate(vocab)}
        self.bpe_ranks = {merge: i for i, merge in enumerate(merges)}
        self.cache: dict[str, str] = {t: t for t in SPECIAL}
        self.pattern: Any = regex.compile(
            "|".join(SPECIAL) + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE
        )
        self.sot, self.eot = self.encoder[SPECIAL[0]], self.encoder[SPECIAL[1]]
        self.context_length = context_length

    def _bpe(self, token: str) -> str:
        if token in self.cache:
            return self.cache[token]
        word: tuple[str, ...] = (*token[:-1], token[-1] + "</w>")
        while len(word) > 1:
            pairs = set(zip(word, word[1:], strict=False))
            first, second = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if (first, second) not in self.bpe_ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
        self.cache[token] = " ".join(word)
        return self.cache[token]

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text``, without start and end tokens (as open_clip's ``encode``)."""
        byte_map = _bytes_to_unicode()
        ids: list[int] = []
        for token in self.pattern.findall(_clean(text)):
            mapped = "".join(byte_map[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[piece] for piece in self._bpe(mapped).split(" "))
        return ids

    def __call__(self, texts: Sequence[str] | str) -> np.ndarray:
        """Token arrays, truncated to the context with the end token kept last (as open_clip)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot, *self.encode(text), self.eot]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.eot
            out[row, : len(ids)] = ids
        return out


def matches_open_clip(fast: ClipTokenizer, reference: Any) -> bool:
    """True when ``fast`` gives ``reference`` (open_clip's tokenizer)'s tokens for the probe texts."""
    try:
        expected = np.asarray(reference(list(PROBE_TEXTS)))
    except (TypeError, ValueError):
        return False
    return expected.shape == (len(PROBE_TEXTS), fast.context_length) and bool(
        np.array_equal(expected, fast(PROBE_TEXTS))
    )
