"""Where data lives on a Hugging Face Space: the persistent volume when one is mounted, and a warning when not.

A Space's own disk is wiped on every restart; persistent storage, when attached, is mounted at
``/data`` (huggingface.co/docs/hub/spaces-storage). On a Space (``SPACE_ID`` set) with that volume,
``CARMATCH_HOME`` defaults to ``/data/carmatch`` and the Hugging Face cache (``HF_HOME``) to
``/data/.huggingface``, so the catalog, index, runs and downloaded weights survive restarts.
Variables set explicitly always win. Off a Space nothing changes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

PERSISTENT_VOLUME = Path("/data")  # where Spaces mount persistent storage
EPHEMERAL_WARNING = (
    "This Space has no persistent storage: the collection, index and training runs are lost when it "
    "restarts. Attach persistent storage in the Space's settings (it is mounted at /data and used "
    "automatically), or set CARMATCH_HOME to a persistent folder."
)


def on_space(env: Mapping[str, str] | None = None) -> bool:
    """True when running on a Hugging Face Space (which sets ``SPACE_ID``)."""
    env = os.environ if env is None else env
    return bool(env.get("SPACE_ID", "").strip())


def persistent_volume(env: Mapping[str, str] | None = None) -> Path | None:
    """The Space's mounted, writable persistent volume, or None (off a Space, or none attached)."""
    if not on_space(env):
        return None
    volume = PERSISTENT_VOLUME
    return volume if volume.is_dir() and os.access(volume, os.W_OK) else None


def volume_home(env: Mapping[str, str] | None = None) -> Path | None:
    """``CARMATCH_HOME`` when unset on a Space with a persistent volume; None elsewhere (the usual default)."""
    volume = persistent_volume(env)
    return volume / "carmatch" if volume is not None else None


def apply_storage_defaults(env: MutableMapping[str, str] | None = None) -> None:
    """Point ``HF_HOME`` at the persistent volume when there is one and it is unset.

    Call before anything imports ``huggingface_hub`` (it reads ``HF_HOME`` once, on import).
    """
    env = os.environ if env is None else env
    volume = persistent_volume(env)
    if volume is not None and not env.get("HF_HOME"):
        env["HF_HOME"] = str(volume / ".huggingface")


def storage_warning(home: Path, env: Mapping[str, str] | None = None) -> str | None:
    """The warning to show when data in ``home`` is lost on restart (a Space, outside its volume)."""
    if not on_space(env):
        return None
    volume = persistent_volume(env)
    if volume is not None and home.resolve().is_relative_to(volume.resolve()):
        return None
    return EPHEMERAL_WARNING
