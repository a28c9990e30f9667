"""The docs' reference pages, generated: every setting from the Settings dataclass, every command from argparse.

``make docs`` writes them into ``docs/reference/`` before building the site, and ``tests/test_docs.py``
fails when the committed pages differ from what the code generates, so neither can drift.
``python -m admin.reference configuration|cli`` prints one; ``--write FOLDER`` writes both.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from carmatch.config import DEFAULT_HOME, Settings

HELP_WIDTH = 100  # columns of the usage blocks in the CLI reference
# Variables read outside Settings: (name, what it does). Settings' own fields are listed from the dataclass.
OTHER_VARIABLES = (
    ("AWS_DEFAULT_REGION", "read when `AWS_REGION` is unset"),
    ("HF_HUB_OFFLINE", "`1` implies `CARMATCH_OFFLINE`; also stops the Hugging Face libraries from downloading"),
    (
        "CARMATCH_MODEL_CACHE",
        "folder of each checkpoint's weights hash and exported ONNX towers; default `CARMATCH_HOME/model-cache`",
    ),
    ("GRADIO_SERVER_NAME", "address the app listens on; default `127.0.0.1` (a Space sets `0.0.0.0`)"),
    ("SPACE_ID", "set by Hugging Face on a Space: turns on the Space defaults (see *Hosting on a Space*)"),
)


def shown_default(value: object) -> str:
    """A default as the reference shows it: the checkout's data folder by name, empty as *(empty)*."""
    if value == DEFAULT_HOME:
        return "the checkout's `data/`"
    if value == "":
        return "*(empty)*"
    if isinstance(value, bool):
        return "`1`" if value else "`0`"
    if isinstance(value, int) and value >= 10_000:
        return f"`{value:_}`"
    return f"`{value}`"


def configuration_markdown() -> str:
    """The Configuration reference page: one row per Settings field."""
    rows = ["| variable | default | what it does |", "|---|---|---|"]
    for item in fields(Settings):
        default = item.default if item.default is not MISSING else None
        secret = " (secret: never shown or logged)" if item.metadata.get("secret") else ""
        rows.append(f"| `{item.metadata['env']}` | {shown_default(default)} | {item.metadata['help']}{secret} |")
    others = ["| variable | what it does |", "|---|---|"]
    others += [f"| `{name}` | {text} |" for name, text in OTHER_VARIABLES]
    return "\n".join(
        [
            "# Configuration reference",
            "",
            "Generated from `carmatch.config.Settings` by `make docs` (a test fails when this page is out of date).",
            "Settings are environment variables, read once at start; a `.env` file in the working directory may",
            "supply them (the environment wins). `.env.example` lists the common ones. A bad value stops the",
            "program with one line naming the variable.",
            "",
            *rows,
            "",
            "## Other variables carmatch reads",
            "",
            *others,
            "",
        ]
    )


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """(name, parser, help) of each direct subcommand, in registration order."""
    found: list[tuple[str, argparse.ArgumentParser, str]] = []
    for action in parser._actions:  # argparse offers no public list of a parser's subcommands
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                found.append((name, sub, helps.get(name, "")))
    return found


def fixed_width(prog: str) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog, width=HELP_WIDTH)


def command_sections(parser: argparse.ArgumentParser, path: str, depth: int) -> list[str]:
    """Markdown for ``parser`` and, below it, each of its subcommands."""
    lines: list[str] = []
    children = subcommands(parser)
    if depth > 0:
        lines += [f"{'#' * min(depth + 1, 4)} `{path}`", ""]
        if parser.description:
            lines += [parser.description, ""]
        if not children:
            parser.formatter_class = fixed_width  # the same page whatever terminal builds it
            lines += ["```text", parser.format_help().rstrip(), "```", ""]
    for name, sub, _ in children:
        lines += command_sections(sub, f"{path} {name}", depth + 1)
    return lines


def all_commands(parser: argparse.ArgumentParser, path: str = "carmatch") -> list[str]:
    """Every command path the CLI accepts (``carmatch index rebuild``), parents included."""
    names: list[str] = []
    for name, sub, _ in subcommands(parser):
        names.append(f"{path} {name}")
        names += all_commands(sub, f"{path} {name}")
    return names


def cli_markdown() -> str:
    """The CLI reference page: every command's usage and options, as ``--help`` prints them."""
    from admin.cli import build_parser

    parser = build_parser(prog="carmatch")
    summary = ["| command | what it does |", "|---|---|"]
    summary += [f"| `carmatch {name}` | {text} |" for name, _, text in subcommands(parser)]
    return "\n".join(
        [
            "# CLI reference",
            "",
            "Generated from the argparse parser (`admin/cli.py`) by `make docs`. `make` installs the command as",
            "`.venv/bin/carmatch` (also `python -m admin`). Errors are one line on stderr and exit status 1.",
            "",
            *summary,
            "",
            *command_sections(parser, "carmatch", 0),
        ]
    )


PAGES = {"configuration": configuration_markdown, "cli": cli_markdown}


def main(argv: list[str] | None = None) -> int:
    """Print one generated page (``configuration`` or ``cli``), or write both into a folder."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "--write":
        out = Path(args[1])
        out.mkdir(parents=True, exist_ok=True)
        for name, build in PAGES.items():
            (out / f"{name}.md").write_text(build(), encoding="utf-8")
        return 0
    if len(args) != 1 or args[0] not in PAGES:
        print("usage: python -m admin.reference configuration|cli | --write FOLDER", file=sys.stderr)
        return 2
    print(PAGES[args[0]]())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
