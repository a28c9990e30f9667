"""Curation commands of the ``dataset`` group: likely caption mistakes, near-duplicate groups, the collection map."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from admin.common import TqdmProgress, runtime_for
from carmatch.atomic import atomic_open
from carmatch.dataset.collection_map import COLOUR_BY, MAX_DRAWN_POINTS, collection_map, downsample, point_labels
from carmatch.dataset.duplicates import DEFAULT_COSINE, find_duplicates
from carmatch.dataset.suspects import cached_scores, find_suspects
from carmatch.errors import InvalidInputError

DEFAULT_TOP = 50


def add_actions(sub: argparse._SubParsersAction) -> None:
    """Add ``suspects``, ``duplicates`` and ``map`` to the ``dataset`` command group."""
    s = sub.add_parser("suspects", help="captions most likely wrong under the active model, most suspect first")
    s.add_argument("--top", type=int, default=DEFAULT_TOP, help=f"how many to print (default {DEFAULT_TOP}; 0: all)")
    s.add_argument("--json", action="store_true", help="print a JSON list of {image_id, path, score, reason, ...}")
    s.add_argument("--refresh", action="store_true", help="compute again even when the cached scores are current")
    s.set_defaults(func=cmd_suspects)

    d = sub.add_parser("duplicates", help="groups of near-duplicate images (kept on one side of the split)")
    d.add_argument("--threshold", type=float, default=DEFAULT_COSINE, help=f"cosine (default {DEFAULT_COSINE})")
    d.add_argument("--json", action="store_true", help="print a JSON list of {keep, members, cosine}")
    d.add_argument("--refresh", action="store_true", help="compare again even when the cached groups are current")
    d.set_defaults(func=cmd_duplicates)

    m = sub.add_parser("map", help="a 2-D map of the image embeddings (PCA), as HTML (Plotly) or JSON")
    m.add_argument("--out", type=Path, required=True, help="file to write: .html (interactive) or .json (ids, x, y)")
    m.add_argument("--colour-by", choices=COLOUR_BY, default="color", help="what colours the points (default color)")
    m.add_argument("--refresh", action="store_true", help="project again even when the cached map is current")
    m.set_defaults(func=cmd_map)


def cmd_suspects(args: argparse.Namespace) -> int:
    """Print the most suspect captions: id, path, score and reason."""
    if args.top < 0:
        raise InvalidInputError(field="top", value=args.top, limit=(0, None), label="--top")
    progress = TqdmProgress(unit="caption")
    with runtime_for(args) as runtime:
        try:
            report = find_suspects(
                runtime.catalog, runtime.embedder, args.settings.home, progress, refresh=args.refresh
            )
        finally:
            progress.close()
    shown = report.suspects[: args.top] if args.top else report.suspects
    if args.json:
        print(json.dumps([s.to_dict() for s in shown], indent=1))
        return 0
    if not report.suspects:
        print("No captioned images to score yet (caption and index some first).")
        return 0
    print(f"{len(shown)} of {len(report.suspects)} captions, most suspect first (model {report.model_key}):")
    for s in shown:
        print(f"{s.score:.3f}  {s.image_id[:12]}  {s.path}\n       {s.reason}")
    if report.skipped:
        print(f"{report.skipped} captioned image(s) have no embedding under this model yet: run `carmatch index`.")
    return 0


def cmd_duplicates(args: argparse.Namespace) -> int:
    """Print the near-duplicate groups (the suggested keeper first) and record them for the split."""
    progress = TqdmProgress()
    with runtime_for(args) as runtime:
        try:
            groups = find_duplicates(
                runtime.catalog,
                runtime.embedder.model_key,
                args.settings.home,
                args.threshold,
                progress,
                refresh=args.refresh,
            )
        finally:
            progress.close()
        paths = {i: r.path for i, r in runtime.catalog.get_many([m for g in groups for m in g.members]).items()}
    if args.json:
        print(json.dumps([g.__dict__ for g in groups], indent=1))
        return 0
    print(f"{len(groups)} group(s) of near-duplicates (cosine >= {args.threshold:g}); each stays in one split.")
    for g in groups:
        print(f"group of {len(g.members)} (lowest cosine {g.cosine:.4f}):")
        for member in g.members:
            mark = "keep  " if member == g.keep else "      "
            print(f"  {mark}{member[:12]}  {paths.get(member, '?')}")
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    """Write the collection map: an interactive Plotly page or the positions as JSON."""
    out = Path(args.out)
    if out.suffix.lower() not in (".html", ".json"):
        raise InvalidInputError(field="out", value=str(out), reason="must end in .html or .json", label="--out")
    if not out.parent.is_dir():
        raise InvalidInputError(field="out", value=str(out), reason="its folder does not exist", label="--out")
    progress = TqdmProgress()
    with runtime_for(args) as runtime:
        try:
            key = runtime.embedder.model_key
            mapped = collection_map(runtime.catalog, key, args.settings.home, progress, refresh=args.refresh)
        finally:
            progress.close()
        if out.suffix.lower() == ".json":
            rows = [{"image_id": i, "x": float(x), "y": float(y)} for i, (x, y) in zip(mapped.ids, mapped.xy)]
            with atomic_open(out, "w", encoding="utf-8") as handle:
                json.dump(rows, handle)
        else:
            from carmatch.ui.curation_figure import map_figure

            drawn = downsample(len(mapped.ids), MAX_DRAWN_POINTS)
            ids = [mapped.ids[i] for i in drawn]
            records = runtime.catalog.get_many(ids)
            scores = cached_scores(args.settings.home, key) if args.colour_by == "suspect score" else None
            labels = point_labels(records, ids, args.colour_by, scores)
            hover = [f"{i[:12]}<br>{(records[i].caption or '')[:80] if i in records else ''}" for i in ids]
            figure = map_figure(mapped.xy[drawn], ids, labels, hover, args.colour_by, len(mapped.ids))
            with atomic_open(out, "w", encoding="utf-8") as handle:
                handle.write(figure.to_html(include_plotlyjs=True, full_html=True))
    print(f"Wrote the map of {len(mapped.ids)} images to {out}")
    return 0
