"""`carmatch backup`: a consistent copy of the catalog (sqlite's VACUUM INTO), safe while the app runs.

It never hurts what it protects: a target that is the live catalog (or one of its journal files) is refused,
a damaged catalog never replaces a backup, and a backup holding more images is not replaced without --force.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from carmatch.catalog import Catalog
from carmatch.catalog.connection import check_catalog_file
from carmatch.catalog.faults import backup_path
from carmatch.errors import InvalidInputError, NotFoundError, StorageError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the backup command to the admin parser."""
    p = subparsers.add_parser("backup", help="write a consistent copy of the catalog (default: carmatch.db.bak)")
    p.add_argument("--to", type=Path, help="file to write (default: carmatch.db.bak beside the catalog)")
    p.add_argument(
        "--force", action="store_true", help="replace a backup that holds more images, or back up a damaged catalog"
    )
    p.set_defaults(func=cmd_backup)


def is_live_file(target: Path, db_path: Path) -> bool:
    """True when ``target`` is the live catalog or one of its journal files (same path, or the same file)."""
    live = [db_path, db_path.with_name(db_path.name + "-wal"), db_path.with_name(db_path.name + "-shm")]
    resolved = target.expanduser().resolve()
    for path in live:
        if resolved == path.resolve():
            return True
        try:
            if target.exists() and path.exists() and os.path.samefile(target, path):
                return True  # a hard link or another name for the live file
        except OSError:
            continue
    return False


def check_backup_target(target: Path, db_path: Path, force: bool) -> None:
    """Refuse a target that would hurt the catalog or the newest good backup."""
    if is_live_file(target, db_path):
        raise InvalidInputError(
            f"{target} is the live catalog itself: a backup must go to another file. Nothing was written."
        )
    if target.exists() and not target.is_file():
        raise InvalidInputError(f"{target} is not a regular file: give a file name for the backup.")
    try:
        live_images = check_catalog_file(db_path)
    except StorageError as exc:
        if not force:
            raise StorageError(
                f"The live catalog fails its integrity check ({exc}); backing it up would replace a good backup "
                "with a damaged one. Restore a backup instead, or back it up anyway with --force."
            ) from exc
        return
    if target.exists() and not force:
        try:
            kept_images = check_catalog_file(target)
        except StorageError:
            return  # a damaged old backup may be replaced
        if kept_images > live_images:
            raise InvalidInputError(
                f"{target.name} holds {kept_images} images and the catalog only {live_images}: replacing it could "
                "lose the only copy of the others. Use another --to file, or --force."
            )


def cmd_backup(args: argparse.Namespace) -> int:
    """Copy the catalog to a backup file another carmatch can restore by copying it back."""
    db_path = args.settings.db_path
    if not db_path.is_file():
        raise NotFoundError(f"There is no catalog at {db_path} to back up yet.")
    target = Path(args.to or backup_path(db_path))
    check_backup_target(target, db_path, args.force)
    catalog = Catalog(db_path)
    try:
        written = catalog.backup(target)
    finally:
        catalog.close()
    print(
        f"Backed up {db_path} to {written}. To restore it, copy it back over {db_path.name} while carmatch is stopped."
    )
    return 0
