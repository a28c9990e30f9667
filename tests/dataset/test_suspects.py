"""Likely caption mistakes first: scores, reasons, the cache per model and caption version, the CLI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from admin.cli import main
from carmatch.catalog import Catalog, ImageRecord
from carmatch.config import Settings
from carmatch.dataset import curation_cache
from carmatch.dataset.suspects import contradiction, find_suspects, score_suspects
from carmatch.embedding.embedder import Embedder
from carmatch.errors import CancelledError
from carmatch.runtime import Runtime

COLOURS = ("red", "blue", "green")


def record(i: int, colour: str, caption: str | None = None) -> ImageRecord:
    caption = caption or f"a {colour} sedan"
    return ImageRecord(f"id{i:03d}", f"/cars/{i}.png", 96, 64, "", caption=caption, attributes={"color": colour})


def test_an_image_that_looks_like_another_colour_is_first_with_the_reason() -> None:
    """Nine cars of each colour; one blue-looking car captioned red (caption and attributes agree)."""
    rng = np.random.default_rng(0)
    axes = {c: np.eye(8)[k] for k, c in enumerate(COLOURS)}
    records, images, texts = [], [], []
    for i in range(27):
        colour = COLOURS[i % 3]
        looks = "blue" if i == 0 else colour  # image 0 is a blue car; its caption says red
        records.append(record(i, colour))
        images.append(axes[looks] + 0.1 * rng.normal(size=8))
        texts.append(axes[colour] + 0.1 * rng.normal(size=8))
    unit = [np.array(v, dtype=np.float32) / np.linalg.norm(v, axis=1, keepdims=True) for v in (images, texts)]

    ranked = score_suspects(records, *unit)

    assert ranked[0].image_id == "id000"
    assert ranked[0].reason == "caption says red; image matches 'blue' captions better"
    assert ranked[0].score > ranked[1].score and 0 <= ranked[-1].score <= ranked[0].score <= 1


def test_a_caption_naming_another_colour_than_its_attribute_is_a_contradiction() -> None:
    assert contradiction(record(1, "blue", "a dark red sedan by a wall")) == (
        "caption says red; its colour attribute says blue"
    )
    assert contradiction(record(2, "dark blue", "a blue sedan with black wheels")) is None
    assert contradiction(record(3, "grey", "a gray pickup truck")) is None
    assert contradiction(ImageRecord("x", "p", 1, 1, "", caption="a red van", attributes={"body_type": "sedan"}))


class CountingEncoder:
    """The tiny model's text tower, counting the captions it encodes."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.encoded = 0
        self.model_key = embedder.model_key

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.encoded += len(texts)
        return self.embedder.encode_texts(texts)


@pytest.fixture
def captioned(runtime: Runtime, car_folder: Path) -> list[str]:
    """The six drawn cars ingested with the tiny model, each captioned with its colour and body."""
    runtime.ingestor().ingest_folder(car_folder)
    ids = []
    for r in runtime.catalog.get_many(runtime.catalog.ids()).values():
        colour, body = Path(r.path).stem.split("_")
        runtime.catalog.set_caption(r.id, f"a {colour} {body}", "claude-batch", {"color": colour, "body_type": body})
        ids.append(r.id)
    return ids


def test_suspects_on_drawn_cars_are_cached_until_a_caption_or_the_model_changes(
    runtime: Runtime, captioned: list[str]
) -> None:
    encoder = CountingEncoder(runtime.embedder)
    home = runtime.settings.home
    catalog = runtime.catalog
    wrong = next(i for i in captioned if catalog.get(i).attributes["color"] == "green")
    catalog.set_caption(wrong, "a red van", "human", {"color": "green", "body_type": "van"})

    first = find_suspects(catalog, encoder, home)
    assert [s.image_id for s in first.suspects][0] == wrong  # the contradiction sorts first
    assert first.suspects[0].reason == "caption says red; its colour attribute says green"
    assert len(first.suspects) == 6 and not first.from_cache and encoder.encoded == 6

    again = find_suspects(catalog, encoder, home)
    assert again.from_cache and again.suspects == first.suspects and encoder.encoded == 6

    catalog.set_caption(wrong, "a green van", "human", {"color": "green", "body_type": "van"})
    fixed = find_suspects(catalog, encoder, home)
    assert not fixed.from_cache and encoder.encoded == 7  # only the edited caption is encoded again
    assert all("colour attribute" not in s.reason for s in fixed.suspects)

    encoder.model_key = "another-model@123"  # a fine-tuned model: new scores (its image vectors are missing)
    other = find_suspects(catalog, encoder, home)
    assert not other.from_cache and other.skipped == 6 and other.suspects == []


def test_an_interrupted_scoring_resumes_where_it_stopped(
    runtime: Runtime, captioned: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(curation_cache, "TEXT_CHUNK", 2)
    encoder = CountingEncoder(runtime.embedder)
    calls = iter(range(100))
    with pytest.raises(CancelledError):
        find_suspects(runtime.catalog, encoder, runtime.settings.home, cancelled=lambda: next(calls) >= 2)
    assert encoder.encoded == 4  # two chunks were encoded and kept before the stop
    report = find_suspects(runtime.catalog, encoder, runtime.settings.home)
    assert encoder.encoded == 6 and len(report.suspects) == 6


def test_cli_prints_suspects_most_suspect_first_as_json(
    settings: Settings, car_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", str(car_folder)]) == 0
    with Catalog(settings.db_path) as catalog:
        for r in catalog.get_many(catalog.ids()).values():
            colour = Path(r.path).stem.split("_")[0]
            said = "blue" if colour == "white" else colour  # one caption disagrees with its attribute
            catalog.set_caption(r.id, f"a {said} car", "claude-batch", {"color": colour})
    capsys.readouterr()
    assert main(["dataset", "suspects", "--top", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert rows[0]["path"].endswith("white_van.png") and "its colour attribute says white" in rows[0]["reason"]
    assert {"image_id", "path", "score", "reason"} <= set(rows[0])

    assert main(["dataset", "suspects", "--top", "-1"]) == 1
    assert "--top" in capsys.readouterr().err
