"""Where data lives on a Hugging Face Space, and the warning an admin gets when curated work would not last.

Spaces have no persistent disk any more (hub-docs ``spaces-storage.md``, checked 2026-12-07): the Space's
own disk is wiped on every restart, and what must last goes to a Storage Bucket mounted as a volume at a
path the owner chooses. carmatch keeps its live catalog and index on local disk (``CARMATCH_HOME``) and
what must last in ``CARMATCH_PERSIST_DIR`` (see :mod:`carmatch.space.persistence`). The Hugging Face
cache stays where the Hub libraries put it, so weights fetched at build time by ``preload_from_hub`` are
found there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

EPHEMERAL_WARNING = (
    "This Space keeps no curated work across restarts: captions, reviews, runs and uploads are lost when it "
    "restarts. Attach a Storage Bucket as a volume in the Space's settings and set CARMATCH_PERSIST_DIR "
    "to the folder it is mounted at."
)
UNWRITABLE_WARNING = (
    "CARMATCH_PERSIST_DIR is set but the folder cannot be written: curated work is not being saved. "
    "Check that the Storage Bucket is mounted read-write at that path."
)


def on_space(env: Mapping[str, str] | None = None) -> bool:
    """True when running on a Hugging Face Space (which sets ``SPACE_ID``)."""
    env = os.environ if env is None else env
    return bool(env.get("SPACE_ID", "").strip())


def storage_warning(persist: Path | None, env: Mapping[str, str] | None = None) -> str | None:
    """For the admin and the log: why curated work would not survive a restart; None when it will (or off a Space)."""
    if persist is not None:
        folder = Path(persist)
        writable = folder.is_dir() and os.access(folder, os.W_OK)
        return None if writable else UNWRITABLE_WARNING
    return EPHEMERAL_WARNING if on_space(env) else None
