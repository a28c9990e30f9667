"""Images in the catalog: add, look up, resolve ids, move, delete and restore; the file stat cache."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from carmatch.catalog.connection import CatalogBase
from carmatch.catalog.records import ImageRecord
from carmatch.catalog.schema import now_iso
from carmatch.errors import InvalidInputError, NotFoundError


class ImagesMixin(CatalogBase):
    """Queries on the ``images`` and ``files`` tables."""

    # -- images -----------------------------------------------------------------------------
    def add_image(
        self,
        image_id: str,
        path: str,
        width: int,
        height: int,
        fmt: str | None = None,
        size_bytes: int | None = None,
        root: str | None = None,
        rel_path: str | None = None,
    ) -> bool:
        """Record an image; returns False when its hash is already in the catalog."""
        with self._transaction() as conn:
            row = conn.execute("SELECT id FROM images WHERE id=?", (image_id,)).fetchone()
            if row is not None:
                return False
            conn.execute(
                "INSERT INTO images (id, path, root, rel_path, width, height, format, size_bytes, added_at)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (image_id, path, root, rel_path, width, height, fmt, size_bytes, now_iso()),
            )
            return True

    def get(self, image_id: str, include_deleted: bool = False) -> ImageRecord:
        """One image by id; NotFoundError when unknown (or deleted)."""
        row = self._execute("SELECT * FROM images WHERE id=?", (image_id,))
        if not row or (row[0]["deleted_at"] and not include_deleted):
            raise NotFoundError(f"No image with id {image_id} in the collection.")
        return ImageRecord.from_row(row[0])

    def get_many(self, image_ids: Sequence[str]) -> dict[str, ImageRecord]:
        """Images by id (missing and deleted ones are left out)."""
        out: dict[str, ImageRecord] = {}
        ids = list(image_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._execute(f"SELECT * FROM images WHERE deleted_at IS NULL AND id IN ({marks})", chunk):
                out[row["id"]] = ImageRecord.from_row(row)
        return out

    def resolve_ids(self, ids: Iterable[str]) -> list[str]:
        """Full ids of live images from ids or unique id prefixes (as the CLI prints them), in order."""
        out: list[str] = []
        for raw in ids:
            key = raw.strip().lower()
            if not key:
                continue
            if not re.fullmatch(r"[0-9a-f]{1,64}", key):
                raise NotFoundError(f"No image with id {raw!r} in the collection (ids are hexadecimal).")
            rows = self._execute(
                "SELECT id FROM images WHERE deleted_at IS NULL AND id >= ? AND id < ? ORDER BY id LIMIT 2",
                (key, key + "g"),
            )
            if not rows:
                raise NotFoundError(f"No image with id {raw!r} in the collection.")
            if len(rows) > 1 and rows[0][0] != key:
                raise InvalidInputError(f"Image id prefix {raw!r} matches several images; give more characters.")
            if rows[0][0] not in out:
                out.append(str(rows[0][0]))
        return out

    def find_by_path(self, path: str) -> ImageRecord | None:
        """The live image last ingested from ``path``, if any."""
        rows = self._execute("SELECT * FROM images WHERE path=? AND deleted_at IS NULL LIMIT 1", (path,))
        return ImageRecord.from_row(rows[0]) if rows else None

    def images_with_id_prefix(self, prefix: str, limit: int = 2) -> list[ImageRecord]:
        """Live images whose id starts with ``prefix`` (lower-cased), in id order, at most ``limit``."""
        key = prefix.strip().lower()
        rows = self._execute(
            "SELECT * FROM images WHERE deleted_at IS NULL AND id >= ? AND id < ? ORDER BY id LIMIT ?",
            (key, key + "g", limit),
        )
        return [ImageRecord.from_row(r) for r in rows]

    def images_with_rel_path(self, rel_path: str, limit: int = 3) -> list[ImageRecord]:
        """Live images ingested under ``rel_path`` (relative to their ingested folder), at most ``limit``."""
        rows = self._execute("SELECT * FROM images WHERE rel_path=? AND deleted_at IS NULL LIMIT ?", (rel_path, limit))
        return [ImageRecord.from_row(r) for r in rows]

    def ids(self, include_deleted: bool = False) -> list[str]:
        """Every image id, oldest first."""
        where = "" if include_deleted else "WHERE deleted_at IS NULL"
        return [r[0] for r in self._execute(f"SELECT id FROM images {where} ORDER BY added_at, id")]

    def count(self) -> int:
        """Number of live images."""
        return int(self._execute("SELECT COUNT(*) FROM images WHERE deleted_at IS NULL")[0][0])

    def is_deleted(self, image_id: str) -> bool:
        """True when the image was deleted from the collection."""
        rows = self._execute("SELECT deleted_at FROM images WHERE id=?", (image_id,))
        return bool(rows and rows[0][0])

    def update_path(self, image_id: str, path: str, root: str | None, rel_path: str | None) -> None:
        """Remember where an already-known image now lives."""
        with self._transaction() as conn:
            conn.execute("UPDATE images SET path=?, root=?, rel_path=? WHERE id=?", (path, root, rel_path, image_id))

    def image_paths(self) -> list[tuple[str, str]]:
        """(id, path) of every live image, oldest first."""
        rows = self._execute("SELECT id, path FROM images WHERE deleted_at IS NULL ORDER BY added_at, id")
        return [(str(r[0]), str(r[1])) for r in rows]

    def relocate_prefix(self, old: str, new: str) -> int:
        """Move image locations (and the file stat cache) from folder ``old`` to ``new``; returns how many images."""
        old, new = old.rstrip("/"), new.rstrip("/")
        if not old or not new:
            raise InvalidInputError("Relocating needs two folders other than /.")

        def moved(path: str | None) -> str | None:
            if path is None or not (path == old or path.startswith(old + "/")):
                return None
            return new + path[len(old) :]

        changed = 0
        with self._transaction() as conn:
            rows = conn.execute("SELECT id, path, root FROM images WHERE substr(path, 1, ?) = ?", (len(old), old))
            for image_id, path, root in rows.fetchall():
                target = moved(path)
                if target is not None:
                    conn.execute(
                        "UPDATE images SET path=?, root=coalesce(?, root) WHERE id=?", (target, moved(root), image_id)
                    )
                    changed += 1
            for path, size_bytes, mtime, image_id in conn.execute(
                "SELECT path, size_bytes, mtime, image_id FROM files WHERE substr(path, 1, ?) = ?", (len(old), old)
            ).fetchall():
                target = moved(path)
                if target is not None:
                    conn.execute("DELETE FROM files WHERE path=?", (path,))
                    conn.execute(
                        "INSERT OR REPLACE INTO files (path, size_bytes, mtime, image_id) VALUES (?,?,?,?)",
                        (target, size_bytes, mtime, image_id),
                    )
        return changed

    def delete_images(self, image_ids: Iterable[str]) -> int:
        """Remove images from the collection (soft delete: history is kept); returns how many."""
        stamp = now_iso()
        changed = 0
        with self._transaction() as conn:
            for image_id in image_ids:
                cur = conn.execute(
                    "UPDATE images SET deleted_at=? WHERE id=? AND deleted_at IS NULL", (stamp, image_id)
                )
                changed += cur.rowcount
        return changed

    def restore_images(self, image_ids: Iterable[str]) -> int:
        """Bring deleted images back into the collection; returns how many."""
        changed = 0
        with self._transaction() as conn:
            for image_id in image_ids:
                changed += conn.execute(
                    "UPDATE images SET deleted_at=NULL WHERE id=? AND deleted_at IS NOT NULL", (image_id,)
                ).rowcount
        return changed

    # -- file stat cache (fast re-ingest) ----------------------------------------------------
    def lookup_file(self, path: str, size_bytes: int, mtime: float) -> str | None:
        """The image id of a file seen before with the same size and mtime, else None."""
        rows = self._execute("SELECT size_bytes, mtime, image_id FROM files WHERE path=?", (path,))
        if rows and rows[0]["size_bytes"] == size_bytes and abs(rows[0]["mtime"] - mtime) < 1e-6:
            return str(rows[0]["image_id"])
        return None

    def remember_file(self, path: str, size_bytes: int, mtime: float, image_id: str) -> None:
        """Record a file's size and mtime with the image id its bytes hash to."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO files (path, size_bytes, mtime, image_id) VALUES (?,?,?,?)",
                (path, size_bytes, mtime, image_id),
            )
