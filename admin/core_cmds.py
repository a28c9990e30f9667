"""Core commands: ingest, search, info, index rebuild."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from admin.common import TqdmProgress, add_engine_option, parse_where, runtime_for
from carmatch.aws import S3_SCHEME, make_client
from carmatch.catalog.schema import FILTER_KEYS
from carmatch.config import VECTOR_STORES
from carmatch.errors import InvalidInputError
from carmatch.ingest.frames import frame_ingestor
from carmatch.ingest.pipeline import Ingestor, Limits
from carmatch.ingest.ray_ingest import RAY_ROUND_OBJECTS, missing_embedder
from carmatch.ingest.rebuild import rebuild_index
from carmatch.ingest.s3_source import S3ImageSource
from carmatch.locations import relocate
from carmatch.search.searcher import check_query
from carmatch.stores.migrate import migrate_store

RESET_REVIEWED_HELP = "let --captions replace approved and rejected captions (back to unreviewed); default: keep them"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the core commands to the admin parser."""
    p = subparsers.add_parser("ingest", help="add a folder of images (and captions) to the collection")
    p.add_argument(
        "folder", help="folder to walk recursively for JPEG/PNG/WebP/BMP images, or an S3 folder s3://bucket/prefix/"
    )
    p.add_argument("--captions", type=Path, help="CSV with columns file,caption (file relative to FOLDER)")
    add_engine_option(p)
    p.add_argument("--reset-reviewed", action="store_true", help=RESET_REVIEWED_HELP)
    p.add_argument(
        "--cars",
        action="store_true",
        help="traffic frames: find each car with the detector (CARMATCH_DETECTOR, default "
        "fasterrcnn_mobilenet_v3_large_fpn) and make it its own search hit; frames without a car stay whole",
    )
    p.add_argument(
        "--boxes",
        type=Path,
        metavar="FILE",
        help="traffic frames: take the cars' boxes from a COCO JSON file or a folder of YOLO .txt files "
        "instead of running the detector",
    )
    p.set_defaults(func=cmd_ingest)

    p = subparsers.add_parser("search", help="find the images most similar to a description and/or a photo")
    p.add_argument("text", nargs="?", help="description, e.g. 'red pickup truck'")
    p.add_argument("--image", type=Path, help="photo to search by")
    p.add_argument("--k", type=int, default=12, help="number of results (default 12)")
    p.add_argument("--image-weight", type=float, default=0.5, help="weight of the photo when both are given (0-1)")
    p.add_argument(
        "--where",
        action="append",
        metavar="KEY=VALUE",
        help=f"filter on {', '.join(FILTER_KEYS)}, e.g. color=red (repeatable)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of {id, path, score, caption, frame, frame_path, box, detector_score} "
        "(frame and box: set for cars cut from traffic frames)",
    )
    p.set_defaults(func=cmd_search)

    p = subparsers.add_parser("info", help="show the model, device, collection and index")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=cmd_info)

    p = subparsers.add_parser("relocate", help="point the catalog at a folder of images that moved")
    p.add_argument("old_prefix", metavar="OLD_PREFIX", help="the folder the images were ingested from")
    p.add_argument("new_prefix", metavar="NEW_PREFIX", type=Path, help="the folder they live in now")
    p.set_defaults(func=cmd_relocate)

    p = subparsers.add_parser("index", help="manage the search index")
    sub = p.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    r = sub.add_parser("rebuild", help="re-embed what the active model lacks and rebuild the index")
    add_engine_option(r)
    r.set_defaults(func=cmd_index_rebuild)
    r = sub.add_parser("migrate", help="copy the index to the other vector store from cached embeddings, then use it")
    r.add_argument("--to", required=True, choices=VECTOR_STORES, help="the store to move to")
    r.set_defaults(func=cmd_index_migrate)


def cmd_ingest(args: argparse.Namespace) -> int:
    """Ingest a folder or an S3 prefix; prints a summary."""
    if not args.folder.strip():
        raise InvalidInputError("The folder to ingest is empty: give a folder (an empty path is not the current one).")
    if args.settings.engine == "ray" and (args.cars or args.boxes):
        raise InvalidInputError(
            field="cars" if args.cars else "boxes",
            value=args.folder,
            reason="runs on the local engine only: ingest the frames without --engine ray (CARMATCH_ENGINE=local)",
        )
    if args.folder.strip().lower().startswith(S3_SCHEME):
        return ingest_s3(args)
    with runtime_for(args) as runtime:
        frames = frame_ingestor(runtime.ingestor(), args.settings, args.cars, args.boxes)
        progress = TqdmProgress()
        try:
            ingest = frames if frames is not None else runtime.bulk_ingestor()
            pipeline = frames.ingestor if frames is not None else ingest
            if isinstance(pipeline, Ingestor):
                pipeline.reset_reviewed = args.reset_reviewed  # --captions keeps review decisions unless told
            report = ingest.ingest_folder(Path(args.folder), args.captions, progress)
        finally:
            progress.close()
        print(report.summary())
        return 130 if report.interrupted else 0


def ingest_s3(args: argparse.Namespace) -> int:
    """Ingest the images under an S3 prefix (downloaded into CARMATCH_HOME/s3/); prints a summary."""
    if args.cars or args.boxes:
        raise InvalidInputError(
            field="cars" if args.cars else "boxes",
            value=args.folder,
            reason="works with a local folder only: download the frames, then ingest the folder",
        )
    if args.captions:
        raise InvalidInputError(
            field="captions",
            value=str(args.captions),
            reason="works with a local folder only: after an S3 ingest, run .venv/bin/carmatch dataset import "
            "FILE, whose file column is the key within the S3 folder",
        )
    settings = args.settings
    limits = Limits(settings.max_image_bytes, settings.max_image_pixels)
    client = make_client("s3", settings.aws_region)
    rounds = {"round_objects": RAY_ROUND_OBJECTS} if settings.engine == "ray" else {}  # one cluster job per round
    source = S3ImageSource(client, args.folder.strip(), settings.files_home, limits, **rounds)
    with runtime_for(args) as runtime:
        progress = TqdmProgress()
        try:
            report = source.ingest(runtime.bulk_ingestor, progress)
        finally:
            progress.close()
        print(report.summary())
        return 130 if report.interrupted else 0


def cmd_search(args: argparse.Namespace) -> int:
    """Search by text, image or both; prints results best first."""
    check_query(args.text, args.image, args.k, args.image_weight)  # before the model loads
    with runtime_for(args) as runtime:
        response = runtime.search(
            text=args.text,
            image=args.image,
            k=args.k,
            image_weight=args.image_weight,
            where=parse_where(args.where),
        )
        if args.json:
            print(json.dumps([r.to_dict() for r in response.results], indent=2))
            for note in response.notes:
                print(f"note: {note}", file=sys.stderr)
            return 0
        for note in response.notes:
            print(f"note: {note}")
        if not response.results:
            print("No matches.")
        for rank, result in enumerate(response.results, 1):
            print(f"{rank:>3}. {result.score:.3f}  {result.path}")
            if result.frame_path:
                print(f"      car {result.box} of frame {result.frame_path}")
            if result.caption:
                print(f"      {result.caption}")
        return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print where the data lives and what model and index are in use."""
    with runtime_for(args) as runtime:
        info = runtime.info(check_files=True)
        if args.json:
            print(json.dumps(info, indent=2))
            return 0
        labels = [
            ("Data folder", "home"),
            ("Model", "model"),
            ("Pretrained", "pretrained"),
            ("Active run", "active_run"),
            ("Device", "device"),
            ("Images", "images"),
            ("Vector store", "store"),
            ("Store at", "store_location"),
            ("Index size", "index_size"),
            ("Index model", "index_model"),
            ("Missing files", "missing_files"),
            ("Persist dir", "persist_dir"),
            ("Last saved", "last_snapshot"),
        ]
        for label, key in labels:
            value = info.get(key)
            print(f"{label + ':':<13} {value if value is not None else '-'}")
        for problem in info["problems"]:
            print(f"! {problem}")
        return 0


def cmd_relocate(args: argparse.Namespace) -> int:
    """Rewrite image locations under OLD_PREFIX to NEW_PREFIX (captions, history and reviews stay)."""
    with runtime_for(args) as runtime:
        print(relocate(runtime.catalog, args.old_prefix, args.new_prefix).summary())
        return 0


def cmd_index_rebuild(args: argparse.Namespace) -> int:
    """Rebuild the index for the active model, swapping it in when complete."""
    with runtime_for(args) as runtime:
        progress = TqdmProgress()
        try:
            settings = args.settings
            embed = missing_embedder(settings.engine, settings)  # None: in this process
            limits = Limits(settings.max_image_bytes, settings.max_image_pixels)
            index, failures = rebuild_index(
                runtime.catalog, runtime.embedder, runtime.store, settings.batch_size, progress, None, limits, embed
            )
        finally:
            progress.close()
        print(f"Index rebuilt: {len(index)} images with {runtime.embedder.model_key}.")
        for image_id, reason in failures:
            print(f"  not indexed {image_id[:12]}: {reason}")
        return 0


def cmd_index_migrate(args: argparse.Namespace) -> int:
    """Copy every cached vector into the other store, verify the count, then switch the setting."""
    with runtime_for(args) as runtime:
        progress = TqdmProgress()
        try:
            report = migrate_store(args.settings, runtime.catalog, runtime.store, args.to, progress=progress)
        finally:
            progress.close()
        print(report.summary())
        return 0
