"""The Ray engine: the same catalog as local ingest, resumable, bad files per file, rebuilds that swap atomically.

One local Ray (2 CPUs) serves every test here. Most of this file's time is Ray starting (once) and each run
starting its workers (a process importing torch, then the tiny model): four runs in all, kept to that.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from carmatch.config import Settings, load_settings
from carmatch.embedding.embedder import Embedder
from carmatch.errors import ConfigError
from carmatch.images import load_image
from carmatch.ingest.ray_engine import pool_shape
from carmatch.ingest.ray_ingest import RayIngestor
from carmatch.runtime import Runtime
from carmatch.training import registry
from tests.conftest import draw_car_folder
from tests.drawing import save_car
from tests.training_support import nudged_checkpoint


class DriverKilled(BaseException):
    """Stands for the driver process dying: nothing after it runs (not even the index save)."""


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """A local Ray with 2 CPUs for this file's tests (about 8 s to start), stopped after them, not at session end."""
    import ray

    # address="local": never a cluster that RAY_ADDRESS names on a developer's machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def ray_settings(settings: Settings, local_ray: Any) -> Settings:
    """Settings of the test's home running the ray engine with 2 workers and small batches."""
    return settings.with_overrides(engine="ray", ray_workers=2, ray_batch_size=3)


def ray_runtime(settings: Settings, embedder: Embedder, home: Path) -> Runtime:
    return Runtime(settings.with_overrides(home=home), embedder=embedder)


def ray_ingestor(runtime: Runtime) -> RayIngestor:
    return RayIngestor(runtime.catalog, runtime.embedder, runtime.store, runtime.settings)


def cars_with_captions_and_bad_files(root: Path) -> tuple[Path, Path]:
    folder = draw_car_folder(root / "cars")
    (folder / "notes.jpg").write_bytes(b"this is not an image at all")
    data = (folder / "red_sedan.jpg").read_bytes()
    (folder / "sub" / "truncated.jpg").write_bytes(data[: len(data) // 3])
    captions = root / "captions.csv"
    captions.write_text("file,caption\nred_sedan.jpg,a red sedan\nsub/green_van.webp,a green van\n")
    return folder, captions


def test_ray_ingest_gives_the_catalog_and_ranking_of_local_ingest(
    runtime: Runtime,
    local_ray: Any,
    embedder: Embedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from admin.cli import main

    folder, captions = cars_with_captions_and_bad_files(tmp_path)
    local = runtime.ingestor().ingest_folder(folder, captions)
    monkeypatch.setenv("CARMATCH_HOME", str(tmp_path / "ray-home"))
    monkeypatch.setenv("CARMATCH_RAY_WORKERS", "2")
    monkeypatch.setenv("CARMATCH_RAY_BATCH_SIZE", "3")
    assert main(["ingest", str(folder), "--captions", str(captions), "--engine", "ray"]) == 0
    out = capsys.readouterr().out
    assert "Added 6 new image(s), 0 already present, 2 skipped, 6 embedded." in out
    assert "Captions imported: 2" in out
    for path, reason in local.skipped:  # each bad file, with local ingest's reason
        assert f"skipped {path}: {reason}" in out
    on_ray = Runtime(load_settings(), embedder=embedder)
    try:
        ids = sorted(runtime.catalog.ids())
        assert sorted(on_ray.catalog.ids()) == ids
        mine = on_ray.catalog.get_embeddings(embedder.model_key, ids)
        theirs = runtime.catalog.get_embeddings(embedder.model_key, ids)
        assert min(float(np.dot(mine[i], theirs[i])) for i in ids) >= 0.9999
        for image_id in ids:
            a, b = on_ray.catalog.get(image_id), runtime.catalog.get(image_id)
            assert (a.caption, a.width, a.height, a.format, a.path) == (b.caption, b.width, b.height, b.format, b.path)
        for query in ({"text": "a red sedan"}, {"image": folder / "blue_pickup.png"}):
            ranked = [r.id for r in on_ray.search(k=6, **query).results]  # type: ignore[arg-type]
            assert ranked == [r.id for r in runtime.search(k=6, **query).results]  # type: ignore[arg-type]
    finally:
        on_ray.close()


def test_killed_ray_driver_leaves_old_index_and_rerun_adds_nothing_twice(
    ray_settings: Settings, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = draw_car_folder(tmp_path / "cars")
    first = tmp_path / "first"
    save_car(first / "old_red.jpg", "red", "van", seed=11)
    runtime = ray_runtime(ray_settings.with_overrides(ray_workers=1), embedder, tmp_path / "home")
    try:
        runtime.ingestor().ingest_folder(first)  # the index serving before the Ray run
        serving = runtime.store.current_generation()

        def killed(*_: object) -> None:
            raise DriverKilled

        batches: list[int] = []

        def progress(done: int, total: int, message: str) -> None:
            batches.append(done)
            if len(batches) == 2:  # the first batch of 3 is committed
                monkeypatch.setattr(runtime.store, "save", killed)  # the driver dies before saving anything
                raise DriverKilled

        with pytest.raises(DriverKilled):
            ray_ingestor(runtime).ingest_folder(folder, progress=progress)
        monkeypatch.undo()
        assert runtime.store.current_generation() == serving
        assert len(runtime.store.load(embedder.model_key)) == 1
        committed = len(runtime.catalog.embedded_ids(embedder.model_key)) - 1
        assert committed == 3

        rerun = ray_ingestor(runtime).ingest_folder(folder)
        assert (rerun.added, rerun.present, rerun.embedded) == (3, 3, 3)  # only what the killed run had not done
        assert runtime.catalog.count() == 7
        index = runtime.store.load(embedder.model_key)
        assert sorted(index.ids) == sorted(runtime.catalog.ids())
        again = ray_ingestor(runtime).ingest_folder(folder)
        assert (again.added, again.present, again.embedded) == (0, 6, 0)
    finally:
        runtime.close()


def test_activating_a_run_on_ray_swaps_its_index_in_only_when_complete(
    ray_settings: Settings, embedder: Embedder, tiny_model: tuple[str, str], tmp_path: Path
) -> None:
    runtime = ray_runtime(ray_settings.with_overrides(ray_workers=1), embedder, tmp_path / "home")
    try:
        runtime.ingestor().ingest_folder(draw_car_folder(tmp_path / "cars"))  # indexed by the base model
        checkpoint = nudged_checkpoint(tiny_model, tmp_path / "runs" / "run-ray" / "best.pt")
        registry.register_model(
            runtime.catalog, "run-ray", "local", tiny_model[0], tiny_model[1], "ready", checkpoint=str(checkpoint)
        )
        serving: list[str] = []

        def progress(done: int, total: int, message: str) -> None:
            if message == "embedding":  # the cluster is embedding: searches still get the base model's index
                serving.append(runtime.store.read_manifest().model_key)

        result = registry.activate(runtime, "run-ray", progress)
        assert serving and set(serving) == {embedder.model_key}
        assert result.rebuilt and result.indexed == 6 and result.failures == []
        assert runtime.store.read_manifest().model_key == result.model_key != embedder.model_key
        run_model = runtime.embedder
        ids = runtime.catalog.ids()
        on_ray = runtime.catalog.get_embeddings(result.model_key, ids)
        here = run_model.encode_images([decoded(runtime, i) for i in ids])
        assert min(float(np.dot(on_ray[i], v)) for i, v in zip(ids, here, strict=True)) >= 0.9999
        assert runtime.search(text="a red car", k=3).results
    finally:
        runtime.close()


def decoded(runtime: Runtime, image_id: str) -> Any:
    """An image decoded as ingest decodes it (JPEGs at the model's draft side)."""
    return load_image(Path(runtime.catalog.get(image_id).path), draft_side=runtime.embedder.image_side).image


def test_ray_pool_gives_each_worker_a_gpu_and_decodes_on_the_cpus(settings: Settings) -> None:
    gpu_node = pool_shape(settings.with_overrides(device="auto"), {"CPU": 16.0, "GPU": 4.0})
    assert gpu_node == (4, 1.0, 1.0, 1.0, 12)  # 4 GPU workers; the other 12 CPUs decode
    cpu_only = pool_shape(settings.with_overrides(device="cpu"), {"CPU": 16.0, "GPU": 4.0})
    assert cpu_only == (8, 0.0, 2.0, 2.0, 8)  # CPU workers of 2 threads; decoding runs inside them
    assert pool_shape(settings.with_overrides(ray_workers=2), {"CPU": 2.0}) == (2, 0.0, 1.0, 1.0, 2)


def test_an_unknown_engine_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="local, ray"):
        load_settings({"CARMATCH_ENGINE": "spark"})


def test_traffic_frames_on_the_ray_engine_are_refused_before_anything_changes(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from admin.cli import main

    folder = draw_car_folder(tmp_path / "frames")
    assert main(["ingest", str(folder), "--cars", "--engine", "ray"]) == 1
    assert "local engine only" in capsys.readouterr().err
    assert not settings.db_path.exists()
