"""Training with attribute-aware captions: it runs, reports both metrics, resumes exactly, skips the unphrasable."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from carmatch.dataset.training_set import SplitFractions, split_of
from carmatch.errors import CancelledError
from carmatch.runtime import Runtime
from carmatch.training.attributes import pair_attributes
from carmatch.training.config import TrainConfig, TrainEvent, TrainResult, create_run
from carmatch.training.data import Pair
from carmatch.training.loop import Trainer
from carmatch.training.runs import prepare_run, run_training
from tests.drawing import BODIES, COLORS, save_car
from tests.training_support import caption_for, fast_config, fill_with_cars

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def described(runtime: Runtime, tmp_path: Path) -> Runtime:
    """72 drawn cars whose approved captions carry their colour and body type as attributes."""
    fill_with_cars(runtime, tmp_path / "cars", seeds=4, attributes=True)
    return runtime


def test_attribute_views_train_and_report_full_caption_and_partial_description_metrics(
    described: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    catalog = described.catalog
    fractions = SplitFractions(0.2, 0.25)  # fast_config's
    vans = [r for r in catalog.iter_captioned(("approved",)) if r.attributes["body_type"] == "van"]
    odd = next(r for r in vans if split_of(r.id, fractions) == "train")
    catalog.set_caption(odd.id, odd.caption, "human", attributes={"color": "red", "body_type": "spaceship"})
    events: list[TrainEvent] = []
    run_id = prepare_run(catalog, described.settings, fast_config(described, epochs=1))
    with caplog.at_level(logging.INFO, logger="carmatch.training.views"):
        result = run_training(catalog, described.settings, run_id, events.append)
    for metrics in (result.test_before, result.test_after):
        assert {"t2i_r1", "t2i_r5", "attr_p1", "attr_p5", "attr_r5", "attr_r10"} <= set(metrics)
        assert metrics["attr_queries"] >= 9  # colour+body, colour and body queries over the test split
        assert 0.0 <= metrics["attr_p5"] <= 1.0 and 0.0 <= metrics["attr_r10"] <= 1.0
    assert all("attr_p5" in e.metrics for e in events if e.kind == "epoch")
    summary = json.loads((described.settings.runs_dir / run_id / "summary.json").read_text())
    assert summary["attribute_values_skipped"] == 1  # skipped with a count, not refused
    assert (
        "1 attribute values the templates cannot phrase were skipped (most common: body_type=spaceship" in caplog.text
    )


def test_a_run_with_attribute_views_resumes_to_the_same_numbers(described: Runtime) -> None:
    config = fast_config(described, epochs=2, batch_size=8, accum_steps=2)
    straight = run_training(
        described.catalog, described.settings, prepare_run(described.catalog, described.settings, config)
    )
    run_id = prepare_run(described.catalog, described.settings, config)
    cancel = threading.Event()

    def stop_mid_epoch(event: TrainEvent) -> None:
        if event.kind == "step" and event.step == 2:
            cancel.set()

    with pytest.raises(CancelledError):
        run_training(described.catalog, described.settings, run_id, stop_mid_epoch, cancel)
    resumed = run_training(described.catalog, described.settings, run_id)
    assert [h["val_loss"] for h in resumed.history] == pytest.approx(
        [h["val_loss"] for h in straight.history], abs=1e-6
    )
    assert resumed.test_after == pytest.approx(straight.test_after, abs=1e-6)


HELD_OUT = {("red", "pickup"), ("blue", "van"), ("yellow", "sedan")}


def held_out_pairs(folder: Path, seeds: int) -> list[Pair]:
    """Drawn cars with sentence captions and colour/body attributes; held-out combinations are all test."""
    scenes = ("parked on a quiet street", "next to a brick wall", "in a parking lot", "on a wet road")
    pairs = []
    for color in COLORS:
        for body in BODIES:
            for seed in range(seeds):
                path = save_car(folder / f"{color}_{body}_{seed}.png", color, body, seed=1000 * seed + len(pairs))
                # of the other combinations drawing 0 is test, drawing 1 validation, the rest train
                split = "test" if (color, body) in HELD_OUT or seed == 0 else "validation" if seed == 1 else "train"
                caption = f"{caption_for(color, body)} {scenes[len(pairs) % len(scenes)]}"
                pairs.append(
                    Pair(
                        f"{color}-{body}-{seed}",
                        str(path),
                        caption,
                        split,
                        pair_attributes({"color": color, "body_type": body}),
                    )
                )
    return pairs


def train_held_out(folder: Path, tiny_model: tuple[str, str], seeds: int = 8, **overrides: Any) -> TrainResult:
    """Train the tiny model on the held-out set (views and hard negatives as given) and return the result."""
    values: dict[str, Any] = dict(epochs=12, batch_size=16, lr=2e-3, warmup_steps=2, weight_decay=0.0, device="cpu")
    values.update(overrides)
    config = TrainConfig(model=tiny_model[0], pretrained=tiny_model[1], **values)
    create_run(folder / "run", config, held_out_pairs(folder / "cars", seeds))
    return Trainer(folder / "run").run()


def test_attribute_views_find_colour_and_body_combinations_never_trained_on(
    tmp_path: Path, tiny_model: tuple[str, str]
) -> None:
    result = train_held_out(tmp_path, tiny_model)
    before, after = result.test_before, result.test_after
    assert before["attr_unseen_queries"] == after["attr_unseen_queries"] == 3  # "a red pickup truck", ...
    assert after["attr_unseen_p5"] >= max(2 * before["attr_unseen_p5"], 0.5), (before, after)
