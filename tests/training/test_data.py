"""Training data survives moved and broken photos: missing files are left out, unreadable ones skipped."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from PIL import Image

from carmatch.errors import InvalidInputError
from carmatch.runtime import Runtime
from carmatch.training.data import Pair, PairDataset, run_pairs
from tests.drawing import save_car
from tests.training_support import fill_with_cars


def test_missing_files_are_left_out_with_a_count_and_the_fix(
    runtime: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    total = fill_with_cars(runtime, tmp_path / "cars", seeds=2)
    gone = sorted((tmp_path / "cars").iterdir())[:2]
    for path in gone:
        path.unlink()
    with caplog.at_level(logging.WARNING):
        pairs, _ = run_pairs(runtime.catalog, 0.2, 0.2)
    assert len(pairs) == total - 2 and not {str(p.resolve()) for p in gone} & {pair.path for pair in pairs}
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "leaves out 2 pair(s)" in warning and "carmatch relocate OLD_FOLDER NEW_FOLDER" in warning


def test_too_few_pairs_left_says_files_are_missing(runtime: Runtime, tmp_path: Path) -> None:
    fill_with_cars(runtime, tmp_path / "cars", seeds=1)
    for path in sorted((tmp_path / "cars").iterdir())[3:]:
        path.unlink()
    with pytest.raises(InvalidInputError, match="Too few pairs") as caught:
        run_pairs(runtime.catalog, 0.2, 0.2)
    assert "are not where the catalog says" in str(caught.value) and "relocate" in str(caught.value)


def test_an_unreadable_image_is_skipped_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken, good = tmp_path / "broken.png", tmp_path / "good.png"
    broken.write_bytes(b"not an image")
    save_car(good, "red", "sedan", seed=1)
    pairs = [Pair("a" * 64, str(broken), "a broken file"), Pair("b" * 64, str(good), "a red sedan")]
    dataset = PairDataset(pairs, lambda image: image.size, lambda texts: texts, None)
    with caplog.at_level(logging.WARNING):
        first, again = dataset[(0, -1)], dataset[(0, 0)]
    with Image.open(good) as drawn:
        assert first == again == (drawn.size, "a red sedan")  # the next pair took the broken one's place
    assert len([r for r in caplog.records if "cannot read" in r.getMessage()]) == 1
