"""What changed between two caption versions, word by word (the history's diff column)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any, Literal

Op = Literal["same", "added", "removed"]


def word_diff(old: str | None, new: str | None) -> list[tuple[Op, str]]:
    """``new`` against ``old`` as runs of words kept, added or removed, in reading order."""
    before, after = (old or "").split(), (new or "").split()
    runs: list[tuple[Op, str]] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            runs.append(("same", " ".join(after[j1:j2])))
            continue
        if tag in ("delete", "replace"):
            runs.append(("removed", " ".join(before[i1:i2])))
        if tag in ("insert", "replace"):
            runs.append(("added", " ".join(after[j1:j2])))
    return runs


def attribute_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[str]:
    """Each attribute that differs, as ``key: old → new`` (``-`` for a missing value)."""
    before, after = dict(old or {}), dict(new or {})

    def shown(value: Any) -> str:
        if value in (None, ""):
            return "-"
        return value if isinstance(value, str) else json.dumps(value)

    return [
        f"{key}: {shown(before.get(key))} → {shown(after.get(key))}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]
