"""What a visitor may see: file names, never server paths; model names, never checkpoint paths.

The public Search tab, the /search API and every error shown in the browser pass their text through
here. Admins see full paths in the Dataset tab and in ``carmatch info``.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any

# An absolute POSIX path (two parts or more) or a Windows one, up to whitespace, a quote or a bracket.
_ABSOLUTE_PATH = re.compile(r"(?<![\w/.:])(?:[A-Za-z]:\\|/)[^\s`'\"()<>\[\],;]*[/\\][^\s`'\"()<>\[\],;]*")


def _name_only(match: re.Match[str]) -> str:
    text = match.group(0)
    tail = text.rstrip(".:")  # keep a sentence's full stop outside the name
    name = PurePath(tail.replace("\\", "/")).name or "…"
    return name + text[len(tail) :]


def scrub_paths(text: str) -> str:
    """``text`` with every absolute path replaced by its last part (``/srv/data/cars/a.jpg`` -> ``a.jpg``)."""
    return _ABSOLUTE_PATH.sub(_name_only, text)


def model_label(value: str) -> str:
    """A model name or pretrained tag as a visitor sees it: a path becomes its file name without the suffix."""
    if "/" in value and (value.startswith(("/", "~", ".")) or value.endswith((".json", ".pt", ".bin", ".safetensors"))):
        return PurePath(value).stem
    return value


def public_result(item: dict[str, Any]) -> dict[str, Any]:
    """A search result for the browser and the API: the image's file name, never its server path."""
    shown = dict(item)
    if "file" in shown:
        shown["file"] = PurePath(str(shown["file"])).name
    if shown.get("frame") is None:  # a whole image: no frame fields
        for key in ("frame", "frame_path", "box", "detector_score"):
            shown.pop(key, None)
    elif shown.get("frame_path"):  # a car cut from a traffic frame: the frame's file name only
        shown["frame_path"] = PurePath(str(shown["frame_path"])).name
    return shown
