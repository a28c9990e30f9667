"""pairs.jsonl, the run's data snapshot: runs written before the split was named "validation" still load and resume."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from carmatch.training.data import Pair, read_pairs_jsonl, split_hash, write_pairs_jsonl

OLD_RUN_LINES = [
    {"image_id": "a" * 64, "path": "/cars/a.png", "caption": "a red sedan", "split": "train"},
    {"image_id": "b" * 64, "path": "/cars/b.png", "caption": "a blue van", "split": "val"},
    {"image_id": "c" * 64, "path": "/cars/c.png", "caption": "a green pickup", "split": "test"},
]


def test_an_older_runs_pairs_file_loads_with_the_public_split_names(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in OLD_RUN_LINES))
    pairs = read_pairs_jsonl(path)
    assert [p.split for p in pairs] == ["train", "validation", "test"]


def test_the_split_hash_in_older_checkpoints_still_matches(tmp_path: Path) -> None:
    digest = hashlib.blake2b(digest_size=12)  # how checkpoints have always hashed their data
    for line in OLD_RUN_LINES:
        digest.update(f"{line['image_id']}\t{line['split']}\t{line['caption']}\n".encode())
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in OLD_RUN_LINES))
    assert split_hash(read_pairs_jsonl(path)) == digest.hexdigest()


def test_pairs_are_written_in_the_format_runs_have_always_used(tmp_path: Path) -> None:
    names = {"train": "train", "val": "validation", "test": "test"}
    pairs = [Pair(line["image_id"], line["path"], line["caption"], names[line["split"]]) for line in OLD_RUN_LINES]
    write_pairs_jsonl(pairs, tmp_path / "pairs.jsonl")
    assert [json.loads(x) for x in (tmp_path / "pairs.jsonl").read_text().splitlines()] == OLD_RUN_LINES
    assert read_pairs_jsonl(tmp_path / "pairs.jsonl") == pairs
