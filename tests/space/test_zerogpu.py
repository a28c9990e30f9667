"""ZeroGPU: the GPU work is decorated with spaces.GPU on a ZeroGPU Space, with durations from the work,
and training runs in resumable chunks that each fit a call; elsewhere nothing changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from carmatch.runtime import Runtime
from carmatch.space import zerogpu
from carmatch.training.runs import prepare_run, run_training, train_in_chunks
from tests.training_support import fast_config, fill_with_cars

REPO = Path(__file__).resolve().parents[2]


def test_off_zerogpu_the_decorator_returns_the_function_itself() -> None:
    def work() -> int:
        return 1

    assert not zerogpu.on_zerogpu({})
    assert zerogpu.gpu(30)(work) is work
    assert zerogpu.on_zerogpu({"SPACES_ZERO_GPU": "true"})


def test_durations_grow_with_the_work() -> None:
    one, many = zerogpu.batches_seconds(1), zerogpu.batches_seconds(10_000, 64)
    assert zerogpu.GPU_CALL_SECONDS < one < many
    assert many == zerogpu.GPU_CALL_SECONDS + zerogpu.GPU_SECONDS_PER_BATCH * 157
    assert zerogpu.training_chunk_seconds() > zerogpu.TRAIN_CHUNK_SECONDS  # steps, then evaluation and checkpoint
    assert zerogpu.image_batch_seconds(torch.zeros(32, 3, 8, 8)) == zerogpu.batches_seconds(32, 32)


def test_on_zerogpu_the_model_calls_are_wrapped_by_the_real_spaces_decorator() -> None:
    """In a process that ZeroGPU's variables mark as one, spaces.GPU wraps each GPU call (nothing is run)."""
    probe = (
        "from carmatch.embedding import gpu_calls\n"
        "from carmatch.training import runs\n"
        "wrapped = [hasattr(f, 'zerogpu') for f in (gpu_calls.image_features, gpu_calls.text_features, "
        "runs._train_chunk)]\n"
        "print(wrapped)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "SPACES_ZERO_GPU": "true"}
    env["SPACES_ZERO_DEVICE_API_URL"] = "http://127.0.0.1:9/"  # never called: nothing decorated runs here
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[True, True, True]"


@pytest.mark.usefixtures("one_thread")
def test_training_in_chunks_gives_the_numbers_of_an_uninterrupted_run(runtime: Runtime, tmp_path: Path) -> None:
    fill_with_cars(runtime, tmp_path / "cars", seeds=2)
    config = fast_config(runtime, epochs=2, batch_size=8)
    straight = run_training(runtime.catalog, runtime.settings, prepare_run(runtime.catalog, runtime.settings, config))
    run_id = prepare_run(runtime.catalog, runtime.settings, config)
    steps: list[int] = []
    chunked = train_in_chunks(
        runtime.settings.runs_dir / run_id,
        lambda event: steps.append(event.step) if event.kind == "step" else None,
        None,
        chunk_seconds=0.0,  # every step its own chunk: set-up, one step, checkpoint, resume
    )
    assert steps == list(range(1, len(steps) + 1)) and len(steps) > 2  # each step once, in order
    assert [h["val_loss"] for h in chunked.history] == pytest.approx(
        [h["val_loss"] for h in straight.history], abs=1e-6
    )
    assert chunked.test_after == pytest.approx(straight.test_after, abs=1e-6)
