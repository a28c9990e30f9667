"""``python -m admin`` (or the ``carmatch`` console script): argparse front end; each command group has a module.

Errors raised by the library (CarmatchError) become one line on stderr and exit status 1, with
each field the library names (``batch_size``) called by the flag that sets it (``--batch-size``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Mapping, Sequence

from admin import aws_cmds, backup_cmds, caption_cmds, core_cmds, dataset_cmds, demo_cmds, train_cmds
from carmatch.catalog.faults import environment_fault
from carmatch.config import load_dotenv_file, load_settings
from carmatch.errors import CarmatchError

log = logging.getLogger("admin")

# Modules that add subcommands, in help order: each defines register(subparsers) and sets func=handler(args) -> int.
COMMAND_MODULES = (core_cmds, caption_cmds, dataset_cmds, demo_cmds, train_cmds, aws_cmds, backup_cmds)
CONSOLE_SCRIPT = "carmatch"  # pyproject's [project.scripts] name for admin.cli:main
MODULE_PROG = "python -m admin"

Handler = Callable[[argparse.Namespace], int]


def prog_name(argv0: str | None = None) -> str:
    """The name usage lines show: ``carmatch`` when run as the console script, else ``python -m admin``."""
    script = os.path.basename(sys.argv[0] if argv0 is None else argv0)
    return CONSOLE_SCRIPT if os.path.splitext(script)[0] == CONSOLE_SCRIPT else MODULE_PROG  # carmatch.exe too


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The full argument parser with every command group registered; ``prog`` defaults to :func:`prog_name`."""
    parser = argparse.ArgumentParser(prog=prog or prog_name(), description="carmatch command-line tools")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def option_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """The options of the command ``args`` ran, by the field each sets: ``{"batch_size": "--batch-size"}``."""
    flags: dict[str, str] = {}
    current: argparse.ArgumentParser | None = parser
    while current is not None:
        chosen: argparse.ArgumentParser | None = None
        for action in current._actions:  # argparse offers no public list of a parser's options
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(args, action.dest, None) or "")
            elif action.option_strings:
                flags[action.dest] = max(action.option_strings, key=len)
        current = chosen
    return flags


def cli_message(exc: CarmatchError, flags: Mapping[str, str]) -> str:
    """The error as one line for a terminal, each field named by its flag where the command has one."""
    text = exc.describe(flags) if exc.problems else str(exc)
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


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
        if getattr(args, "engine", None):  # --engine local|ray: CARMATCH_ENGINE for this command
            args.settings = args.settings.with_overrides(engine=args.engine)
        return handler(args)
    except CarmatchError as exc:
        print(f"error: {cli_message(exc, option_flags(parser, args))}", file=sys.stderr)
        return 1
    except (OSError, sqlite3.DatabaseError) as exc:
        fault = environment_fault(exc, args.settings.home if hasattr(args, "settings") else None)
        if fault is None:
            raise
        print(f"error: {cli_message(fault, {})}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: work already committed is kept; run the command again to resume.", file=sys.stderr)
        return 130
