"""Traffic frames and the cars cropped from them: each crop is an image of its own, linked to its frame and box.

A frame whose boxes gave at least one car is a row of ``frames`` (not of ``images``): its crops are what
search finds. A frame without any car is an ordinary image and never appears here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from carmatch.catalog.connection import CatalogBase
from carmatch.catalog.schema import now_iso
from carmatch.errors import NotFoundError


@dataclass(frozen=True)
class CropLink:
    """Where a crop comes from: its frame, its box in the frame's pixels, and who found it how surely."""

    image_id: str
    frame_id: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels of the frame, x1/y1 exclusive
    score: float
    detector: str
    label: str | None = None


@dataclass
class FrameRecord:
    """A traffic frame with the cars cropped from it."""

    id: str
    path: str
    width: int
    height: int
    boxes_from: str
    added_at: str
    root: str | None = None
    rel_path: str | None = None
    deleted_at: str | None = None
    crops: list[CropLink] = field(default_factory=list)


def _link(row: object) -> CropLink:
    r = row  # sqlite3.Row
    return CropLink(
        r["image_id"],  # type: ignore[index]
        r["frame_id"],  # type: ignore[index]
        (int(r["x0"]), int(r["y0"]), int(r["x1"]), int(r["y1"])),  # type: ignore[index]
        float(r["score"]),  # type: ignore[index]
        r["detector"],  # type: ignore[index]
        r["label"],  # type: ignore[index]
    )


class FramesMixin(CatalogBase):
    """Queries on the ``frames`` and ``crops`` tables."""

    def add_frame(
        self,
        frame_id: str,
        path: str,
        width: int,
        height: int,
        boxes_from: str,
        crops: Sequence[CropLink],
        root: str | None = None,
        rel_path: str | None = None,
    ) -> bool:
        """Record a frame and its crops' links in one transaction; False when the frame was already known."""
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM frames WHERE id=?", (frame_id,)).fetchone():
                return False
            conn.execute(
                "INSERT INTO frames (id, path, root, rel_path, width, height, boxes_from, added_at)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (frame_id, path, root, rel_path, width, height, boxes_from, now_iso()),
            )
            for c in crops:
                conn.execute(
                    "INSERT OR IGNORE INTO crops (image_id, frame_id, x0, y0, x1, y1, score, detector, label)"
                    " VALUES (?,?,?,?,?,?,?,?,?)",
                    (c.image_id, frame_id, *c.box, float(c.score), c.detector, c.label),
                )
            return True

    def frame_state(self, frame_id: str) -> str | None:
        """``live`` or ``deleted`` for a known frame, None for an id that is no frame."""
        rows = self._execute("SELECT deleted_at FROM frames WHERE id=?", (frame_id,))
        if not rows:
            return None
        return "deleted" if rows[0][0] else "live"

    def get_frame(self, frame_id: str, include_deleted: bool = False) -> FrameRecord:
        """One frame with its crops' links (deleted crops left out); NotFoundError when unknown."""
        rows = self._execute("SELECT * FROM frames WHERE id=?", (frame_id,))
        if not rows or (rows[0]["deleted_at"] and not include_deleted):
            raise NotFoundError(f"No frame with id {frame_id} in the collection.")
        r = rows[0]
        links = self._execute(
            "SELECT c.* FROM crops c JOIN images i ON i.id = c.image_id"
            " WHERE c.frame_id=? AND i.deleted_at IS NULL ORDER BY c.x0, c.y0",
            (frame_id,),
        )
        return FrameRecord(
            r["id"],
            r["path"],
            r["width"],
            r["height"],
            r["boxes_from"],
            r["added_at"],
            r["root"],
            r["rel_path"],
            r["deleted_at"],
            [_link(x) for x in links],
        )

    def crop_links(self, image_ids: Iterable[str]) -> dict[str, CropLink]:
        """The frame links of those ids that are crops (other ids are left out)."""
        ids = list(image_ids)
        out: dict[str, CropLink] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._execute(f"SELECT * FROM crops WHERE image_id IN ({marks})", chunk):
                out[row["image_id"]] = _link(row)
        return out

    def crop_frames(self) -> dict[str, str]:
        """Every crop id with its frame id (the split's groups: a frame's crops stay together)."""
        return {str(r[0]): str(r[1]) for r in self._execute("SELECT image_id, frame_id FROM crops")}

    def frame_paths(self, frame_ids: Iterable[str]) -> dict[str, str]:
        """The file of each live frame among ``frame_ids``."""
        ids = list(dict.fromkeys(frame_ids))
        out: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT id, path FROM frames WHERE deleted_at IS NULL AND id IN ({marks})"
            out.update({str(r[0]): str(r[1]) for r in self._execute(sql, chunk)})
        return out

    def has_frame_at(self, path: str) -> bool:
        """True when a live frame was cut into cars from the file at ``path``."""
        return bool(self._execute("SELECT 1 FROM frames WHERE path=? AND deleted_at IS NULL LIMIT 1", (path,)))

    def frame_crop_ids(self, frame_ids: Iterable[str]) -> list[str]:
        """The ids of the crops of these frames, live or not."""
        ids = list(frame_ids)
        out: list[str] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT image_id FROM crops WHERE frame_id IN ({marks}) ORDER BY frame_id, x0, y0"
            out.extend(str(r[0]) for r in self._execute(sql, chunk))
        return out

    def relocate_frames(self, old: str, new: str) -> int:
        """Move frames from folder ``old`` to ``new`` (relocate_prefix does it for images); returns how many."""
        old, new = old.rstrip("/"), new.rstrip("/")
        changed = 0
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT id, path, root FROM frames WHERE substr(path, 1, ?) = ?", (len(old) + 1, old + "/")
            )
            for frame_id, path, root in rows.fetchall():
                moved_root = new + root[len(old) :] if root and (root == old or root.startswith(old + "/")) else root
                conn.execute(
                    "UPDATE frames SET path=?, root=? WHERE id=?", (new + path[len(old) :], moved_root, frame_id)
                )
                changed += 1
        return changed

    def mark_frames_deleted(self, frame_ids: Iterable[str]) -> int:
        """Mark frames deleted (their crops are deleted as images by the caller); returns how many."""
        stamp = now_iso()
        changed = 0
        with self._transaction() as conn:
            for frame_id in frame_ids:
                changed += conn.execute(
                    "UPDATE frames SET deleted_at=? WHERE id=? AND deleted_at IS NULL", (stamp, frame_id)
                ).rowcount
        return changed
