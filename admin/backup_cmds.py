"""`carmatch backup`: a consistent copy of the catalog (sqlite's VACUUM INTO), safe while the app runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from carmatch.catalog import Catalog
from carmatch.catalog.faults import backup_path
from carmatch.errors import NotFoundError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the backup command to the admin parser."""
    p = subparsers.add_parser("backup", help="write a consistent copy of the catalog (default: carmatch.db.bak)")
    p.add_argument("--to", type=Path, help="file to write (default: carmatch.db.bak beside the catalog)")
    p.set_defaults(func=cmd_backup)


def cmd_backup(args: argparse.Namespace) -> int:
    """Copy the catalog to a backup file another carmatch can restore by copying it back."""
    db_path = args.settings.db_path
    if not db_path.is_file():
        raise NotFoundError(f"There is no catalog at {db_path} to back up yet.")
    catalog = Catalog(db_path)
    try:
        target = catalog.backup(args.to or backup_path(db_path))
    finally:
        catalog.close()
    print(
        f"Backed up {db_path} to {target}. To restore it, copy it back over {db_path.name} while carmatch is stopped."
    )
    return 0
