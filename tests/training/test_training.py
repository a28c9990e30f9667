"""Fine-tuning: it learns, it resumes exactly, it refuses bad input without touching the live model."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

from carmatch.errors import BusyError, CancelledError, InvalidInputError, ModelMismatchError, NotFoundError
from carmatch.runtime import Runtime
from carmatch.training import registry
from carmatch.training.checkpoints import LAST_CHECKPOINT
from carmatch.training.config import TrainEvent, TrainingOutOfMemoryError, freeze_all_but_last
from carmatch.training.data import catalog_pairs
from carmatch.training.evaluation import chance_t2i_recall, retrieval_metrics
from carmatch.training.loop import Trainer
from carmatch.training.runs import prepare_run, run_training, start_training, training_slot
from carmatch.training.schedule import lr_at
from tests.training_support import fast_config, fill_with_cars

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def home(runtime: Runtime, tmp_path: Path) -> Runtime:
    """A runtime whose collection holds 72 drawn cars (6 colours × 3 bodies × 4) with approved captions."""
    fill_with_cars(runtime, tmp_path / "cars", seeds=4)
    return runtime


def _live_state(runtime: Runtime) -> tuple[object, str | None]:
    return runtime.active_model(), runtime.store.current_generation()


def test_lr_warms_up_linearly_then_decays_by_cosine_to_the_floor() -> None:
    lrs = [lr_at(step, 100, 10, 1.0, 0.1) for step in range(101)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.55)  # halfway through the cosine
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[100] == pytest.approx(0.1)


def test_recall_counts_any_image_with_the_same_caption_as_a_hit() -> None:
    eye = torch.eye(4).numpy()
    perfect = retrieval_metrics(eye, eye, ["a", "b", "c", "d"])
    assert perfect["t2i_r1"] == perfect["i2t_r1"] == 1.0 and perfect["t2i_median_rank"] == 1.0
    near_miss = 0.9 * eye[[1, 0, 3, 2]] + 0.5 * eye  # each text prefers its neighbour, then its own image
    shuffled = retrieval_metrics(eye, near_miss, ["a", "b", "c", "d"])
    assert shuffled["t2i_r1"] == 0.0 and shuffled["t2i_r5"] == 1.0 and shuffled["t2i_median_rank"] == 2.0
    shared = retrieval_metrics(eye, near_miss, ["x", "x", "c", "c"])
    assert shared["t2i_r1"] == 1.0 and shared["n_texts"] == 2.0


def test_freezing_keeps_only_the_last_blocks_and_heads_trainable(embedder) -> None:  # type: ignore[no-untyped-def]
    import copy

    model = copy.deepcopy(embedder.model)
    trainable, total = freeze_all_but_last(model, 1)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "visual.transformer.resblocks.1.attn.in_proj_weight" in names
    assert "transformer.resblocks.1.mlp.c_fc.weight" in names
    assert not any(".resblocks.0." in n for n in names)
    assert {"visual.proj", "text_projection", "logit_scale"} <= names
    assert "token_embedding.weight" not in names and 0 < trainable < total
    assert freeze_all_but_last(model, -1) == (total, total)


def test_fine_tune_raises_text_to_image_recall_on_held_out_images(home: Runtime) -> None:
    """The proof: a short CPU run learns colour + body words well above the untrained model and chance."""
    run_id = prepare_run(home.catalog, home.settings, fast_config(home, epochs=12))
    result = run_training(home.catalog, home.settings, run_id)
    test_captions = [p.caption for p in catalog_pairs(home.catalog, 0.2, 0.25)[0] if p.split == "test"]
    chance = chance_t2i_recall(test_captions, 5)
    before, after = result.test_before["t2i_r5"], result.test_after["t2i_r5"]
    assert len(test_captions) >= 12
    assert after >= 0.9, (before, after)
    assert after >= before + 0.3 and after >= chance + 0.3, (before, after, chance)
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]
    record = registry.get_model(home.catalog, run_id)
    assert record.status == "ready" and record.checkpoint == f"runs/{run_id}/best.pt"  # relative: the home can move
    assert (home.settings.files_home / record.checkpoint).is_file()
    assert record.metrics["test_after"]["t2i_r5"] == after
    summary = json.loads((home.settings.runs_dir / run_id / "summary.json").read_text())
    assert summary["test_before"]["t2i_r5"] == before


def test_resume_after_cancel_gives_the_same_numbers_as_an_uninterrupted_run(home: Runtime) -> None:
    config = fast_config(home, epochs=2, batch_size=8, accum_steps=2)
    straight = run_training(home.catalog, home.settings, prepare_run(home.catalog, home.settings, config))

    run_id = prepare_run(home.catalog, home.settings, config)
    cancel = threading.Event()

    def stop_mid_epoch(event: TrainEvent) -> None:
        if event.kind == "step" and event.step == 2:  # mid-epoch, between accumulation groups
            cancel.set()

    with pytest.raises(CancelledError, match=f"--resume {run_id}"):
        run_training(home.catalog, home.settings, run_id, stop_mid_epoch, cancel)
    assert (home.settings.runs_dir / run_id / LAST_CHECKPOINT).is_file()
    assert registry.get_model(home.catalog, run_id).status == "cancelled"
    steps: list[TrainEvent] = []
    resumed = run_training(home.catalog, home.settings, run_id, steps.append)
    assert [e.step for e in steps if e.kind == "step"][0] == 3  # continued, not restarted
    assert steps[-1].total_steps == 6
    assert [h["val_loss"] for h in resumed.history] == pytest.approx(
        [h["val_loss"] for h in straight.history], abs=1e-6
    )
    assert resumed.test_after == pytest.approx(straight.test_after, abs=1e-6)
    a = torch.load(straight.best_checkpoint, weights_only=True)
    b = torch.load(resumed.best_checkpoint, weights_only=True)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_background_job_reports_progress_refuses_a_second_start_and_cancels(home: Runtime) -> None:
    started = threading.Event()
    job = start_training(home, fast_config(home, epochs=50, batch_size=4))
    try:
        with pytest.raises(BusyError):
            start_training(home, fast_config(home))
        while not job.snapshot()["loss_curve"] and job.running:
            job.wait(0.05)
        started.set()
    finally:
        job.cancel()
        assert job.wait(60)
    snap = job.snapshot()
    assert snap["status"] == "cancelled" and "--resume" in (snap["error"] or "")
    assert snap["loss_curve"] and snap["val_curve"][0]["epoch"] == 0 and snap["total_steps"] > 0
    assert registry.get_model(home.catalog, job.run_id).status == "cancelled"
    assert (home.settings.runs_dir / job.run_id / LAST_CHECKPOINT).is_file()


def test_training_slot_is_exclusive(home: Runtime) -> None:
    with training_slot(home.settings.runs_dir):
        with pytest.raises(BusyError, match="already running"):
            run_training(home.catalog, home.settings, prepare_run(home.catalog, home.settings, fast_config(home)))


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"epochs": 0}, "at least 1 epoch"),
        ({"lr": -1e-4}, "must be positive"),
        ({"batch_size": 500}, "larger than the"),
        ({"unfreeze": -3}, "--unfreeze"),
    ],
)
def test_nonsensical_hyperparameters_are_refused_and_change_nothing(
    home: Runtime, overrides: dict, message: str
) -> None:
    before = _live_state(home)
    with pytest.raises(InvalidInputError, match=message):
        prepare_run(home.catalog, home.settings, fast_config(home, **overrides))
    assert _live_state(home) == before
    assert registry.list_models(home.catalog) == []


def test_no_captions_and_too_few_pairs_are_refused(runtime: Runtime, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="No captioned images"):
        prepare_run(runtime.catalog, runtime.settings, fast_config(runtime))
    fill_with_cars(runtime, tmp_path / "few", seeds=1)
    ids = runtime.catalog.ids()
    for image_id in ids[5:]:
        runtime.catalog.set_review_state(image_id, "rejected")
    with pytest.raises(InvalidInputError, match="Too few pairs"):
        prepare_run(runtime.catalog, runtime.settings, fast_config(runtime))


def test_unapproved_captions_are_used_only_when_none_is_approved(runtime: Runtime, tmp_path: Path) -> None:
    fill_with_cars(runtime, tmp_path / "cars", seeds=1, approve=False)
    pairs, source = catalog_pairs(runtime.catalog)
    assert source == "unreviewed" and len(pairs) == 18
    runtime.catalog.set_review_state(pairs[0].image_id, "approved")
    runtime.catalog.set_review_state(pairs[1].image_id, "rejected")
    pairs, source = catalog_pairs(runtime.catalog)
    assert source == "approved" and [p.image_id for p in pairs] == [pairs[0].image_id]


def test_unknown_run_and_checkpoint_of_another_model_are_refused(home: Runtime, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="No model run 'run-nope'"):
        run_training(home.catalog, home.settings, "run-nope")
    run_id = prepare_run(home.catalog, home.settings, fast_config(home, epochs=1))
    run_training(home.catalog, home.settings, run_id)
    # point the run at a wider model: its checkpoint cannot load there
    from tests.conftest import TINY_CONFIG

    other = tmp_path / "wider-clip.json"
    other.write_text(json.dumps({**TINY_CONFIG, "embed_dim": 48}))
    config_file = home.settings.runs_dir / run_id / "config.json"
    config_file.write_text(
        json.dumps({**json.loads(config_file.read_text()), "model": str(other), "pretrained": "none"})
    )
    before = _live_state(home)
    with pytest.raises(ModelMismatchError, match="architecture"):
        Trainer(home.settings.runs_dir / run_id).run()
    assert _live_state(home) == before


def test_cuda_out_of_memory_becomes_advice(home: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    import open_clip

    def out_of_memory(self, image, normalize=False):  # type: ignore[no-untyped-def]
        if self.training:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, image, normalize)

    original = open_clip.model.CLIP.encode_image
    monkeypatch.setattr(open_clip.model.CLIP, "encode_image", out_of_memory)
    run_id = prepare_run(home.catalog, home.settings, fast_config(home, batch_size=16))
    with pytest.raises(TrainingOutOfMemoryError, match="--batch-size 8 --accum-steps 2"):
        run_training(home.catalog, home.settings, run_id)
    assert registry.get_model(home.catalog, run_id).status == "failed"


def test_gradient_accumulation_contrasts_the_whole_effective_batch(embedder) -> None:  # type: ignore[no-untyped-def]
    """Two micro-batches of 4 give the same gradients as one batch of 8 (not two batches of 4)."""
    import copy

    import torch
    from open_clip.loss import ClipLoss

    from carmatch.training.contrastive import backward_group
    from tests.drawing import draw_car

    colors, bodies = ["red", "blue", "green", "yellow"], ["sedan", "pickup"]
    images = torch.stack(
        [embedder.preprocess(draw_car(c, b, seed=n)) for n, (c, b) in enumerate((c, b) for c in colors for b in bodies)]
    )
    tokens = embedder.tokenizer([f"a {c} {b}" for c in colors for b in bodies])

    def grads(group: list) -> tuple[float, dict[str, torch.Tensor]]:  # type: ignore[type-arg]
        model = copy.deepcopy(embedder.model).train()
        loss = backward_group(model, group, ClipLoss(), lambda x: x, "cpu")
        return loss, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    full_loss, full = grads([(images, tokens)])
    accum_loss, accum = grads([(images[:4], tokens[:4]), (images[4:], tokens[4:])])
    assert accum_loss == pytest.approx(full_loss, rel=1e-4)
    assert full.keys() == accum.keys()
    for name in full:
        assert torch.allclose(full[name], accum[name], rtol=1e-3, atol=1e-6), name
    _, split = grads([(images[:4], tokens[:4])])  # a lone micro-batch sees only 4 captions: different
    assert any(not torch.allclose(full[n], split[n], rtol=1e-3, atol=1e-6) for n in full)
