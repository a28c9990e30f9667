"""The demo command: fill an empty collection with captioned cars from a public data set."""

from __future__ import annotations

import argparse

from admin.common import TqdmProgress, runtime_for
from carmatch.dataset.demo import DEMO_COUNT, DEMO_DATASET, DEMO_SEED, DEMO_SPLIT, import_demo


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the demo command to the admin parser."""
    p = subparsers.add_parser("demo", help="fill an empty collection with cars from a public data set")
    p.add_argument(
        "--dataset",
        default=DEMO_DATASET,
        metavar="ID_OR_PATH",
        help=f"a Hugging Face Hub data set id, or a local image folder / parquet folder (default {DEMO_DATASET})",
    )
    p.add_argument("--split", default=DEMO_SPLIT, help=f"which split to read (default {DEMO_SPLIT})")
    p.add_argument("--n", type=int, default=DEMO_COUNT, help=f"how many images (default {DEMO_COUNT})")
    p.add_argument(
        "--seed", type=int, default=DEMO_SEED, help=f"which images: the shuffle's seed (default {DEMO_SEED})"
    )
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Import the demo collection; prints a summary (Ctrl-C, then run again, resumes)."""
    with runtime_for(args) as runtime:
        progress = TqdmProgress()
        try:
            report = import_demo(runtime, args.dataset, args.split, args.n, args.seed, progress)
        finally:
            progress.close()
        print(report.summary())
        if not report.interrupted:
            print(next_steps(runtime.settings.pretrained))
        return 130 if report.interrupted else 0


def next_steps(pretrained: str) -> str:
    """What to do with the demo collection, and what its results mean with the weights at hand."""
    lines = ['Next: `make run` and open http://127.0.0.1:7860, or `.venv/bin/carmatch search "red suv"`.']
    if pretrained.strip().lower() == "none":
        lines.append(
            "The model has random weights (CARMATCH_PRETRAINED=none): similar-looking photos still land near "
            "each other, but a description finds cars no better than chance and scores mean little. With the "
            "real weights (unset CARMATCH_PRETRAINED and run with internet once) descriptions find the right cars."
        )
    return "\n".join(lines)
