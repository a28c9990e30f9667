"""Text is text: CSV exports never run as formulas; imports drop control characters and refuse non-scalars."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from carmatch.catalog import Catalog
from carmatch.dataset import export
from carmatch.dataset import import_captions as imports
from carmatch.runtime import Runtime
from tests.dataset_support import add, car


def test_csv_export_neutralises_formula_cells(tmp_path: Path) -> None:
    hostile = ['=HYPERLINK("http://x","y")', "+1+2", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]
    with Catalog(tmp_path / "c.db") as catalog:
        for n, text in enumerate(hostile):
            add(catalog, car(tmp_path / "img" / f"{n}.png", n), text, make=text)
        add(catalog, car(tmp_path / "img" / "ok.png", 9), "a red sedan, 4-door", make="volvo")
        export.export_csv(catalog, tmp_path / "pairs.csv")
    rows = list(csv.DictReader((tmp_path / "pairs.csv").open(encoding="utf-8", newline="")))
    captions = {row["caption"] for row in rows}
    assert captions == {"'" + text for text in hostile} | {"a red sedan, 4-door"}
    assert {row["make"] for row in rows} == {"'" + text for text in hostile} | {"volvo"}


def test_import_strips_control_characters(runtime: Runtime, car_folder: Path, tmp_path: Path) -> None:
    runtime.ingestor().ingest_folder(car_folder)
    line = {"file": "red_sedan.jpg", "caption": "a red\x00 sedan\x1b[31m\u202e", "make": "vol\x07vo"}
    path = tmp_path / "import.jsonl"
    path.write_text(json.dumps(line) + "\n")
    rows, ignored = imports.read_import_file(path)
    assert rows[0].caption == "a red sedan[31m" and rows[0].attributes["make"] == "volvo"


def test_import_refuses_list_object_and_nan_attributes_with_a_reason_per_row(
    runtime: Runtime, car_folder: Path, tmp_path: Path
) -> None:
    runtime.ingestor().ingest_folder(car_folder)
    record = runtime.catalog.find_by_path(str(car_folder / "red_sedan.jpg"))
    assert record is not None
    path = tmp_path / "import.jsonl"
    path.write_text(
        '{"file": "red_sedan.jpg", "caption": "a red sedan", "make": ["volvo", "saab"]}\n'
        '{"file": "red_sedan.jpg", "caption": "a red sedan", "attributes": {"color": {"r": 1}}}\n'
        '{"file": "red_sedan.jpg", "caption": "a red sedan", "viewpoint": NaN}\n'
    )
    rows, ignored = imports.read_import_file(path)
    plan = imports.preview_import(runtime.catalog, rows, ignored)
    assert plan.changes == []
    reasons = {line: reason for line, _label, reason in plan.problems}
    assert reasons == {
        1: "make must be a single value, not a list",
        2: "color must be a single value, not an object",
        3: "viewpoint must be a real value, not nan",
    }
    assert runtime.catalog.get(record.id).attributes == record.attributes
