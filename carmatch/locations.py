"""Where image files live: find the ones that are gone, and point the catalog at a moved folder."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from carmatch.catalog import Catalog
from carmatch.config import CLI
from carmatch.errors import InvalidInputError

log = logging.getLogger(__name__)

MISSING_EXAMPLES = 3  # how many missing files a message names
# Images ingested from S3 are kept at CARMATCH_HOME/s3/<bucket>/<key>: that local copy is the image's
# path in the catalog (thumbnails, training, captions and embedding read it), and the path maps back
# to exactly one S3 URI (s3_uri_of), which Titan exports reference instead of uploading the image again.
S3_COPY_FOLDER = "s3"


@dataclass(frozen=True)
class RelocateReport:
    """What a relocate did: images moved, and how many of them are still not found at the new place."""

    old: str
    new: str
    relocated: int
    still_missing: int

    def summary(self) -> str:
        """One or two lines a person reads."""
        lines = [f"Relocated {self.relocated} image(s) from {self.old} to {self.new}."]
        if not self.relocated:
            lines.append(f"No image in the collection lives under {self.old}; see `{CLI} info` for the missing ones.")
        if self.still_missing:
            lines.append(f"{self.still_missing} of them are not in {self.new} either; check the folder.")
        return "\n".join(lines)


def missing_files(catalog: Catalog) -> list[tuple[str, str]]:
    """(id, path) of every live image whose file is not where the catalog says."""
    return [(image_id, path) for image_id, path in catalog.image_paths() if not os.path.isfile(path)]


def missing_files_problem(missing: list[tuple[str, str]], home: Path | None = None) -> str:
    """One sentence: how many files are missing, a few of them, and the commands that fix it.

    With ``home``, local copies of S3 images that are gone are counted apart, with the ingest that
    downloads them back.
    """
    examples = ", ".join(path for _, path in missing[:MISSING_EXAMPLES])
    more = ", …" if len(missing) > MISSING_EXAMPLES else ""
    text = (
        f"{len(missing)} image file(s) are not where the catalog says ({examples}{more}). If you moved "
        f"the folder, run `{CLI} relocate OLD_FOLDER NEW_FOLDER` or ingest it again from its new place "
        f"(`{CLI} ingest NEW_FOLDER`, captions and reviews are kept)."
    )
    uris = [uri for _, path in missing if home is not None and (uri := s3_uri_of(path, home)) is not None]
    if uris:
        folders = sorted({uri.rsplit("/", 1)[0] + "/" for uri in uris})
        text += (
            f" {len(uris)} of them are local copies of S3 images: `{CLI} ingest {folders[0]}` downloads them "
            f"back{' (and likewise for the other S3 folders)' if len(folders) > 1 else ''}."
        )
    return text


def _folder_text(folder: str | Path) -> str:
    """A folder as an absolute path string, without resolving links (the old one may no longer exist)."""
    return os.path.abspath(os.path.expanduser(str(folder)))


def relocate(catalog: Catalog, old: str | Path, new: str | Path) -> RelocateReport:
    """Point every image under folder ``old`` at the same relative path under ``new``."""
    old_text, new_text = _folder_text(old), str(Path(new).expanduser().resolve())
    if not Path(new_text).is_dir():
        raise InvalidInputError(field="new_prefix", value=str(new), reason=f"is not a folder ({new_text})")
    if old_text == new_text:
        raise InvalidInputError(field="new_prefix", value=str(new), reason="is the same folder as the old one")
    moved_ids = {image_id for image_id, path in catalog.image_paths() if _under(path, old_text)}
    relocated = catalog.relocate_prefix(old_text, new_text)
    catalog.relocate_frames(old_text, new_text)  # traffic frames cut into cars move with their folder
    still = sum(1 for image_id, path in catalog.image_paths() if image_id in moved_ids and not os.path.isfile(path))
    log.info("Relocated %d image(s) from %s to %s", relocated, old_text, new_text)
    return RelocateReport(old_text, new_text, relocated, still)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def s3_copy_path(home: Path, bucket: str, key: str) -> Path:
    """Where the local copy of ``s3://bucket/key`` lives; InvalidInputError for a key no file name can hold."""
    parts = key.split("/")
    if not key or any(part in ("", ".", "..") for part in parts) or "\0" in key:
        raise InvalidInputError(
            field="s3_key", value=key, reason="has an empty, '.' or '..' segment, so it cannot be a local file name"
        )
    return Path(home).expanduser().resolve() / S3_COPY_FOLDER / bucket / Path(*parts)


def s3_uri_of(path: str | Path, home: Path) -> str | None:
    """The S3 URI an image's path is the local copy of, or None for an image from a local folder."""
    root = Path(home).expanduser().resolve() / S3_COPY_FOLDER
    local = Path(path)
    if not local.is_relative_to(root):
        return None
    parts = local.relative_to(root).parts
    return f"s3://{parts[0]}/{'/'.join(parts[1:])}" if len(parts) >= 2 else None


def stored_checkpoint(path: Path, files_home: Path) -> str:
    """How a run's checkpoint is recorded: relative to the home's files folder when inside it, else absolute.

    A relative record keeps working when the whole home is moved or copied elsewhere.
    """
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(Path(files_home).resolve()).as_posix()
    except ValueError:
        return str(resolved)


def checkpoint_file(stored: str | None, files_home: Path) -> Path | None:
    """The file a run's checkpoint record names in this home (None when there is no record).

    A relative record lies under ``files_home``. An absolute one written before records were relative, by a
    home that has since moved, is looked up under this home's ``runs/`` folder by its part from ``runs/`` on.
    """
    if not stored:
        return None
    path = Path(stored)
    if not path.is_absolute():
        return Path(files_home) / path
    if path.exists() or "runs" not in path.parts:
        return path
    tail = path.parts[len(path.parts) - 1 - path.parts[::-1].index("runs") :]
    moved = Path(files_home).joinpath(*tail)
    if moved.exists():
        log.info("Checkpoint %s found at %s (the home moved)", stored, moved)
        return moved
    return path
