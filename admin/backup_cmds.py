"""`carmatch backup` and `carmatch restore`: consistent, timestamped copies of the catalog, and putting one back.

`backup` writes a new file with SQLite (``VACUUM INTO``), safe while the app runs, into ``<home>/backups/``
(the newest CARMATCH_BACKUP_KEEP are kept). It never hurts what it protects: a target that is the live
catalog (or one of its journal files) is refused, a damaged catalog is never backed up, and a catalog holding
fewer images than the newest good backup is not backed up without --force. `restore` checks the backup,
keeps a copy of the current catalog, and swaps the contents in while holding the index write lock.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from carmatch.atomic import check_output_path
from carmatch.catalog import Catalog
from carmatch.catalog.backups import (
    backup_folder,
    check_catalog_file,
    list_backups,
    new_backup_path,
    newest_good_backup,
    prune_backups,
    restore_into,
)
from carmatch.errors import InvalidInputError, NotFoundError, StorageError
from carmatch.stores.write_lock import write_lock_for


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the backup and restore commands to the admin parser."""
    p = subparsers.add_parser("backup", help="write a consistent, timestamped copy of the catalog (home/backups/)")
    p.add_argument("--to", type=Path, help="file to write (default: a new timestamped file in home/backups/)")
    p.add_argument("--parents", action="store_true", help="create the --to file's missing folders")
    p.add_argument(
        "--force",
        action="store_true",
        help="back up a catalog holding fewer images than the newest backup, or a damaged one",
    )
    p.set_defaults(func=cmd_backup)

    r = subparsers.add_parser("restore", help="put a backup back in place of the catalog (checked, atomic)")
    r.add_argument("backup", nargs="?", type=Path, help="backup file (default: the newest good one)")
    r.add_argument("--list", action="store_true", help="list the backups, newest first, and what each holds")
    r.set_defaults(func=cmd_restore)


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


def is_inside_live_files(target: Path, home: Path) -> bool:
    """True when ``target`` lies in the home's live folders (the index, thumbnails, runs, uploads)."""
    resolved = target.expanduser().resolve()
    for name in ("index", "thumbs", "runs", "uploads", "milvus.db"):
        live = (home / name).resolve()
        if resolved == live or live in resolved.parents:
            return True
    return False


def check_backup_target(target: Path, db_path: Path, force: bool, parents: bool = False) -> int:
    """Refuse a target that would hurt the catalog or the newest good backup; the catalog's image count."""
    if is_live_file(target, db_path) or is_inside_live_files(target, db_path.parent):
        raise InvalidInputError(
            f"{target} is the live catalog itself or one of the home's live files: a backup must go to another "
            "file. Nothing was written."
        )
    check_output_path(target, parents=parents)
    try:
        live_images = check_catalog_file(db_path)
    except StorageError as exc:
        if not force:
            raise StorageError(
                f"The live catalog fails its integrity check ({exc}); backing it up would put a damaged copy "
                "beside the good ones. Restore a backup (carmatch restore) instead, or back it up anyway with --force."
            ) from exc
        return -1
    if force:
        return live_images
    kept = [target] if target.exists() else []
    newest = newest_good_backup(db_path)
    if newest is not None:
        kept.append(newest[0])
    for path in kept:
        try:
            kept_images = check_catalog_file(path)
        except StorageError:
            continue  # a damaged old backup may be replaced
        if kept_images > live_images:
            raise InvalidInputError(
                f"The backup {path} holds {kept_images} images and the catalog only {live_images}: a backup now "
                "could push the only copy of the others out. Check the catalog, or back it up anyway with --force."
            )
    return live_images


def cmd_backup(args: argparse.Namespace) -> int:
    """Copy the catalog to a new backup file (the newest CARMATCH_BACKUP_KEEP timestamped ones are kept)."""
    db_path = args.settings.db_path
    if not db_path.is_file():
        raise NotFoundError(f"There is no catalog at {db_path} to back up yet.")
    target = Path(args.to) if args.to is not None else new_backup_path(db_path)
    if args.to is None:
        target.parent.mkdir(parents=True, exist_ok=True)
    images = check_backup_target(target, db_path, args.force, args.parents)
    catalog = Catalog(db_path)
    try:
        written = catalog.backup(target)
    finally:
        catalog.close()
    pruned = prune_backups(db_path, args.settings.backup_keep) if written.parent == backup_folder(db_path) else []
    held = f" ({images} images)" if images >= 0 else ""
    print(f"Backed up {db_path}{held} to {written}. To put it back: carmatch restore {written}")
    if pruned:
        print(f"Removed {len(pruned)} older backup(s), keeping the newest {args.settings.backup_keep}.")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Check a backup, keep a copy of the current catalog, then swap the backup in under the write lock."""
    db_path = args.settings.db_path
    if args.list:
        return list_all(db_path)
    if args.backup is None:
        newest = newest_good_backup(db_path)
        if newest is None:
            raise NotFoundError(f"No good backup of {db_path} was found (looked in {backup_folder(db_path)}).")
        source = newest[0]
    else:
        source = Path(args.backup).expanduser()
        if not source.is_file():
            raise NotFoundError(f"There is no backup file at {source}.")
    if is_live_file(source, db_path):
        raise InvalidInputError(f"{source} is the live catalog itself: name a backup file. Nothing was changed.")
    try:
        images = check_catalog_file(source)
    except StorageError as exc:
        raise StorageError(f"The backup cannot be restored: {exc}. Nothing was changed.") from exc
    lock = write_lock_for(args.settings.index_dir)
    with lock.holding("catalog restore"):
        kept = _keep_current(db_path)
        aside = restore_into(source, db_path)
    print(f"Restored {source} ({images} images) into {db_path}.")
    if kept is not None:
        print(f"The catalog as it was is kept in {kept}.")
    if aside is not None:
        print(f"The damaged catalog was moved to {aside}.")
    print("Run `carmatch index rebuild` if images were added or removed since that backup.")
    return 0


def _keep_current(db_path: Path) -> Path | None:
    """Back up a whole current catalog before it is replaced (None when it is missing or damaged)."""
    try:
        check_catalog_file(db_path)
    except (StorageError, OSError):
        return None
    target = new_backup_path(db_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(db_path)
    try:
        return catalog.backup(target.with_name(target.stem + "-before-restore.db"))
    finally:
        catalog.close()


def list_all(db_path: Path) -> int:
    """Print every backup, newest first, with its image count or why it cannot be restored."""
    backups = list_backups(db_path)
    if not backups:
        print(f"No backups of {db_path} yet: carmatch backup writes one.")
        return 0
    for path in backups:
        try:
            what = f"{check_catalog_file(path)} images"
        except StorageError as exc:
            what = f"cannot be restored: {exc}"
        print(f"{path}  {what}")
    return 0
