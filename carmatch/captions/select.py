"""Which images a captioning run sends to Claude: the one rule live and batch captioning share."""

from __future__ import annotations

from collections.abc import Sequence

from carmatch.captions.prompt import PROMPT_VERSION
from carmatch.catalog import Catalog

CLAUDE_SOURCES = ("claude-live", "claude-batch")


def select_images(
    catalog: Catalog,
    image_ids: Sequence[str] | None = None,
    *,
    only_missing: bool = False,
    overwrite_human: bool = False,
    redo: bool = False,
) -> list[str]:
    """The images a captioning run should send, in catalog order.

    Skipped: human captions (unless ``overwrite_human``), images already captioned by Claude with
    the current prompt version (unless ``redo``), and with ``only_missing`` every image that has
    any caption.
    """
    wanted = set(catalog.resolve_ids(image_ids)) if image_ids is not None else None
    chosen: list[str] = []
    for state in catalog.caption_states():
        if wanted is not None and state.image_id not in wanted:
            continue
        if state.source == "human" and state.has_caption and not overwrite_human:
            continue
        if only_missing and state.has_caption:
            continue
        if not redo and state.source in CLAUDE_SOURCES and state.prompt_version == PROMPT_VERSION:
            continue
        chosen.append(state.image_id)
    return chosen
