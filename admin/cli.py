"""``python -m admin``: argparse front end; each command group lives in its own module.

Errors raised by the library (CarmatchError) become one line on stderr and exit status 1, with
each field the library names (``batch_size``) called by the flag that sets it (``--batch-size``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Mapping, Sequence

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
        return handler(args)
    except CarmatchError as exc:
        print(f"error: {cli_message(exc, option_flags(parser, args))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: work already committed is kept; run the command again to resume.", file=sys.stderr)
        return 130
