"""Dataset commands: export pairs (CSV, JSONL, Titan), the train/validation/test split, import, approve, reject."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from admin import curation_cmds
from admin.common import TqdmProgress, runtime_for
from carmatch.atomic import check_output_path
from carmatch.dataset import bulk, curation, training_set
from carmatch.dataset.export import EXPORT_FORMATS, export_csv, export_jsonl
from carmatch.dataset.export_titan import export_titan
from carmatch.dataset.import_captions import apply_import, preview_import, read_import_file
from carmatch.dataset.titan_upload import upload_titan
from carmatch.errors import InvalidInputError

CLI_AUTHOR = "cli"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``dataset`` command group to the admin parser."""
    p = subparsers.add_parser("dataset", help="export, import and review image-caption pairs")
    sub = p.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)

    e = sub.add_parser("export", help="export approved pairs as CSV, JSONL or Titan fine-tuning JSONL")
    e.add_argument("--format", choices=EXPORT_FORMATS, required=True, help="csv | jsonl | titan")
    e.add_argument("--out", type=Path, required=True, help="output file (csv, jsonl) or folder (titan)")
    e.add_argument("--parents", action="store_true", help="create --out's missing parent folders")
    e.add_argument("--s3-prefix", help="titan: where images and JSONL live, e.g. s3://bucket/carmatch/titan/")
    e.add_argument("--upload", action="store_true", help="titan: copy images and JSONL to --s3-prefix")
    e.add_argument("--include-unreviewed", action="store_true", help="also export unreviewed (never rejected) pairs")
    e.add_argument(
        "--validation-fraction",
        type=float,
        help="titan: least share of records for validation, topped up from the train split "
        "(default: the collection's validation split; the test split is never exported)",
    )
    e.set_defaults(func=cmd_export)

    s = sub.add_parser("splits", help="which images are in the train, validation and test split")
    s.add_argument("--json", action="store_true", help='print {"train": [ids], "validation": [ids], "test": [ids]}')
    s.add_argument("--include-unreviewed", action="store_true", help="count unreviewed (never rejected) pairs too")
    s.set_defaults(func=cmd_splits)

    st = sub.add_parser("stats", help="curation counts: images, review states, caption sources, failures")
    st.add_argument("--json", action="store_true", help="print the counts as JSON (for scripts)")
    st.set_defaults(func=cmd_stats)

    i = sub.add_parser("import", help="import captions from a CSV or JSONL file (shows a preview first)")
    i.add_argument("file", type=Path, help="CSV/JSONL with file or id, caption, optional attribute columns")
    i.add_argument("--yes", action="store_true", help="apply without asking")
    i.add_argument(
        "--reset-reviewed",
        action="store_true",
        help="also replace approved and rejected captions (they return to unreviewed); default: keep decisions",
    )
    i.set_defaults(func=cmd_import)

    a = sub.add_parser("approve", help="approve captions (all unreviewed captioned images, or some ids)")
    group = a.add_mutually_exclusive_group(required=True)
    group.add_argument("--all", action="store_true", help="every captioned image that is still unreviewed")
    group.add_argument("--ids", nargs="+", metavar="ID", help="image ids or unique prefixes")
    a.set_defaults(func=cmd_approve)

    r = sub.add_parser("reject", help="reject captions (excluded from training and exports)")
    r.add_argument("--ids", nargs="+", metavar="ID", required=True, help="image ids or unique prefixes")
    r.set_defaults(func=cmd_reject)

    u = sub.add_parser("undo-bulk", help="take back the newest approve/reject/delete bulk action in one step")
    u.add_argument("action_id", nargs="?", help="the action to undo (default: the newest; it must be the newest)")
    u.add_argument("--list", action="store_true", help="list the logged bulk actions, newest first, and change nothing")
    u.set_defaults(func=cmd_undo_bulk)

    curation_cmds.add_actions(sub)  # suspects, duplicates, map


def cmd_export(args: argparse.Namespace) -> int:
    """Export the pairs in the chosen format (and upload a Titan export when asked)."""
    if args.upload and args.format != "titan":
        raise InvalidInputError("--upload is for --format titan (it copies images and JSONL to --s3-prefix).")
    check_output_path(args.out, args.parents, folder=args.format == "titan")  # no device, link, or missing folder
    with runtime_for(args) as runtime:
        if args.format == "csv":
            report = export_csv(runtime.catalog, args.out, args.include_unreviewed)
        elif args.format == "jsonl":
            report = export_jsonl(runtime.catalog, args.out, args.include_unreviewed)
        else:
            progress = TqdmProgress()
            try:
                report = export_titan(
                    runtime.catalog,
                    args.out,
                    args.s3_prefix,
                    args.include_unreviewed,
                    args.validation_fraction,
                    progress,
                )
            finally:
                progress.close()
        print(report.summary())
        if args.upload:
            from carmatch.aws import make_client

            progress = TqdmProgress(unit="obj")
            try:
                uploaded = upload_titan(make_client("s3", args.settings.aws_region), args.out, progress)
            finally:
                progress.close()
            print(uploaded.summary())
        return 0


def cmd_splits(args: argparse.Namespace) -> int:
    """Print the split every consumer uses: ids as JSON, or counts per split."""
    with runtime_for(args) as runtime:
        chosen = training_set.training_set(runtime.catalog, args.include_unreviewed)
        ids = training_set.split_ids(runtime.catalog, chosen)
        if args.json:
            print(json.dumps(ids, indent=1))
            return 0
        total = sum(len(members) for members in ids.values())
        print(f"Split of the {total} training pairs ({chosen.source}; {chosen.fractions.describe()}):")
        for name, members in ids.items():
            print(f"  {name:<10} {len(members)}")
        return 0


def cmd_stats(args: argparse.Namespace) -> int:
    """Print the counts the Dataset tab shows, as text or JSON."""
    with runtime_for(args) as runtime:
        stats = curation.dataset_stats(runtime.catalog)
    if args.json:
        print(json.dumps(stats, indent=1))
        return 0
    print(f"images             {stats['images']}")
    for state, n in stats["review_state"].items():
        print(f"  {state:<16} {n}")
    print("caption source")
    for source, n in stats["caption_source"].items():
        print(f"  {source:<16} {n}")
    print(f"failed captioning  {stats['failed_captioning']}")
    print(f"uncaptioned        {stats['uncaptioned']}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Preview an import, ask (unless --yes), then apply it."""
    rows, ignored = read_import_file(args.file)
    with runtime_for(args) as runtime:
        preview = preview_import(runtime.catalog, rows, ignored, reset_reviewed=args.reset_reviewed)
        print(preview.summary())
        if not preview.changes:
            print("Nothing to change.")
            return 0
        if not args.yes:
            print(f"Apply {len(preview.changes)} change(s)? [y/N] ", end="", flush=True)
            answer = sys.stdin.readline().strip().lower()
            if answer not in ("y", "yes"):
                print("Nothing changed.")
                return 1
        print(apply_import(runtime.catalog, preview, author=CLI_AUTHOR).summary())
        return 0


def cmd_approve(args: argparse.Namespace) -> int:
    """Approve the given images, or every unreviewed captioned one."""
    with runtime_for(args) as runtime:
        if args.all:
            ids = curation.matching_ids(runtime.catalog, curation.Query(state="unreviewed"))
        else:
            ids = runtime.catalog.resolve_ids(args.ids)
        report = bulk.bulk_review(runtime.catalog, ids, "approved", author=CLI_AUTHOR)
        print(report.summary())
        return 0


def cmd_undo_bulk(args: argparse.Namespace) -> int:
    """List the logged bulk actions, or undo the newest one."""
    with runtime_for(args) as runtime:
        if args.list:
            actions = bulk.bulk_actions(runtime.catalog)
            for action in actions:
                print(action.describe())
            if not actions:
                print("No bulk actions logged yet.")
            return 0
        report = bulk.undo_bulk(runtime.catalog, runtime.store, args.action_id, CLI_AUTHOR, TqdmProgress())
        print(report.summary())
        return 0


def cmd_reject(args: argparse.Namespace) -> int:
    """Reject the given images (kept in the collection, excluded from training)."""
    with runtime_for(args) as runtime:
        ids = runtime.catalog.resolve_ids(args.ids)
        print(bulk.bulk_review(runtime.catalog, ids, "rejected", author=CLI_AUTHOR).summary())
        return 0
