"""Two processes on one carmatch home: index writers take turns, and a running app follows the CLI.

Each test starts real ``python`` processes (the CLI's ``main``) against the test's home. A rebuild
is paused inside its save by a hook that waits for a "go" file; the test polls files (with a
timeout) to order the steps, and never sleeps to let something happen.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from carmatch.catalog import Catalog
from carmatch.config import Settings
from carmatch.runtime import Runtime
from carmatch.stores.hnsw_store import IndexStore
from tests.conftest import draw_car_folder
from tests.drawing import save_car

REPO = Path(__file__).resolve().parents[1]
WAIT_SECONDS = 180  # only a guard against a hang; every wait returns as soon as its file appears
POLL_SECONDS = 0.05

# Runs `carmatch <args>`; with PAUSE_AT_SAVE set, an index save first writes that file, then waits for GO.
CLI_SNIPPET = """
import os, sys, time
from pathlib import Path
if os.environ.get("PAUSE_AT_SAVE"):
    from carmatch.stores.hnsw_store import IndexStore
    original = IndexStore.save
    def paused_save(self, index):
        Path(os.environ["PAUSE_AT_SAVE"]).write_text("saving")
        deadline = time.monotonic() + 180
        while not Path(os.environ["GO"]).exists():
            if time.monotonic() > deadline:
                raise SystemExit("the test never let the save go on")
            time.sleep(0.05)
        return original(self, index)
    IndexStore.save = paused_save
from admin.cli import main
sys.exit(main(sys.argv[1:]))
"""


def start_cli(args: list[str], log: Path, **env: str) -> subprocess.Popen[bytes]:
    """Start ``carmatch args`` in another process, its output going to ``log``."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **env}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", CLI_SNIPPET, *args], stdout=out, stderr=subprocess.STDOUT, env=environment
        )


def wait_for(check: Callable[[], bool], what: str, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``check`` until it holds; fail after WAIT_SECONDS or when ``process`` ended first."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        if process is not None and process.poll() is not None and not check():
            pytest.fail(f"the process ended (exit {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(POLL_SECONDS)


def finish(process: subprocess.Popen[bytes], log: Path) -> str:
    """Wait for ``process``; its output, after checking it succeeded."""
    process.wait(timeout=WAIT_SECONDS)
    output = log.read_text(errors="replace")
    assert process.returncode == 0, output
    return output


def draw_more_cars(root: Path, count: int) -> Path:
    """``count`` new distinct cars in ``root``."""
    for n in range(count):
        save_car(root / f"more_{n}.png", ("red", "blue", "green", "black")[n % 4], "van", seed=100 + n)
    return root


def test_an_ingest_during_a_rebuilds_save_waits_and_ends_in_the_index(
    settings: Settings, runtime: Runtime, tmp_path: Path
) -> None:
    runtime.ingestor().ingest_folder(draw_car_folder(tmp_path / "cars"))
    paused, go = tmp_path / "paused", tmp_path / "go"
    rebuild = start_cli(["index", "rebuild"], tmp_path / "rebuild.log", PAUSE_AT_SAVE=str(paused), GO=str(go))
    wait_for(paused.exists, "the rebuild to reach its save", rebuild)
    ingest_log = tmp_path / "ingest.log"
    ingest = start_cli(["ingest", str(draw_more_cars(tmp_path / "more", 4))], ingest_log)
    said_waiting = lambda: "waiting for the running rebuild" in ingest_log.read_text(errors="replace").lower()  # noqa: E731
    wait_for(said_waiting, "the ingest to say it waits", ingest)
    assert ingest.poll() is None  # the ingest waits for the rebuild instead of saving under it
    go.touch()
    finish(rebuild, tmp_path / "rebuild.log")
    finish(ingest, ingest_log)
    catalog = Catalog(settings.db_path)
    store = IndexStore(settings.index_dir)
    try:
        assert catalog.count() == 10
        assert store.read_manifest().count == 10
        assert sorted(store.load().ids) == sorted(catalog.ids())
    finally:
        catalog.close()


def nudged_run(runtime: Runtime, tiny_model: tuple[str, str], folder: Path) -> str:
    """Register a ready fine-tuned run: the tiny model with nudged weights (another embedding space)."""
    import torch

    from carmatch.training import registry

    state = torch.load(tiny_model[1], weights_only=True)
    generator = torch.Generator().manual_seed(7)
    nudged = {
        k: v + 0.05 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v
        for k, v in state.items()
    }
    checkpoint = folder / "run-b" / "best.pt"
    checkpoint.parent.mkdir(parents=True)
    torch.save(nudged, checkpoint)
    registry.register_model(runtime.catalog, "run-b", "local", tiny_model[0], tiny_model[1], "ready", str(checkpoint))
    return str(checkpoint)


def answering_model(runtime: Runtime) -> str:
    """Search like the app does; the model key of the index that answered (it must answer)."""
    searcher = runtime.searcher()
    assert searcher.search(text="a red sedan", k=3).results
    return searcher.index.manifest.model_key


def test_a_running_app_follows_a_model_activated_by_the_cli(
    runtime: Runtime, tiny_model: tuple[str, str], tmp_path: Path
) -> None:
    from carmatch.embedding.embedder import load_clip

    runtime.ingestor().ingest_folder(draw_car_folder(tmp_path / "cars"))
    base_key = answering_model(runtime)
    run_key = load_clip(tiny_model[0], nudged_run(runtime, tiny_model, tmp_path / "runs"), "cpu").model_key
    paused, go, log = tmp_path / "paused", tmp_path / "go", tmp_path / "activate.log"
    activation = start_cli(["model", "activate", "run-b"], log, PAUSE_AT_SAVE=str(paused), GO=str(go))
    wait_for(paused.exists, "the activation to reach its save", activation)
    assert answering_model(runtime) == base_key  # the old model answers while the new index is built
    go.touch()
    answered = []
    while True:  # search again and again while the other process saves the new index and swaps models
        answered.append(answering_model(runtime))
        try:
            activation.wait(timeout=POLL_SECONDS)
            break
        except subprocess.TimeoutExpired:
            continue
    finish(activation, log)
    assert set(answered) <= {base_key, run_key}
    assert answering_model(runtime) == run_key
    assert runtime.active_model().run_id == "run-b"
    assert runtime.info(load_model=False)["problems"] == []
