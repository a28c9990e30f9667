"""``python -m admin``: argparse front end; each command group lives in its own module.

Errors raised by the library (CarmatchError) become one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from carmatch.config import load_dotenv_file, load_settings
from carmatch.errors import CarmatchError

log = logging.getLogger("admin")

# Modules that add subcommands: each defines register(subparsers) and sets func=handler(args) -> int.
COMMAND_MODULES = ("admin.core_cmds", "admin.caption_cmds", "admin.dataset_cmds", "admin.train_cmds")

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every command group registered."""
    parser = argparse.ArgumentParser(prog="python -m admin", description="carmatch command-line tools")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one admin command; returns the process exit status."""
    load_dotenv_file()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handler: Handler | None = getattr(args, "func", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        args.settings = load_settings()
        return handler(args)
    except CarmatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: work already committed is kept; run the command again to resume.", file=sys.stderr)
        return 130
