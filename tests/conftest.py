"""Shared fixtures: a tiny open_clip model saved to a local checkpoint, isolated carmatch homes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path, PurePath

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a missing download fails at once, never hangs
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402

from carmatch.access import PASSWORD_THROTTLE  # noqa: E402
from carmatch.config import Settings, load_settings  # noqa: E402
from carmatch.embedding.embedder import Embedder, load_clip  # noqa: E402
from carmatch.runtime import Runtime  # noqa: E402
from tests.drawing import save_car  # noqa: E402
from tests.milvus_server import MilvusServerAddress, running_server  # noqa: E402

# Under pytest-xdist (`make test` spreads the suite over the cores): tests that share one costly thing run on
# one worker, the rest spread out. The browser tests share one app and one Chromium; Ray, the MCP app and the
# process races start their own servers. Milvus' server listens on fixed ports (one per machine): `make test`
# runs its two files in a process of their own beside the workers; the group keeps them together otherwise.
ONE_WORKER_FILES = ("test_ray_engine.py", "test_mcp.py", "test_processes.py")
MILVUS_CONTRACT = "test_store_contract.py"  # its server cases ask for the server inside a parametrized fixture


def xdist_group(item: pytest.Item) -> str | None:
    """The worker group a test belongs to, or None to let any worker take it."""
    path = Path(str(item.fspath))
    if "milvus_server" in getattr(item, "fixturenames", ()) or path.name in ("test_milvus_store.py", MILVUS_CONTRACT):
        return "milvus"
    if "browser" in path.parts:
        return "browser"
    return path.stem if path.name in ONE_WORKER_FILES else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test's xdist group (ignored when the suite runs in one process)."""
    for item in items:
        group = xdist_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(config JSON path, checkpoint path) of a tiny CLIP with seeded random weights."""
    import open_clip
    import torch

    from carmatch.embedding.embedder import register_model_config

    folder = tmp_path_factory.mktemp("tiny-model")
    config = folder / "tiny-clip.json"
    config.write_text(json.dumps(TINY_CONFIG))
    arch = register_model_config(str(config))
    torch.manual_seed(0)
    model = open_clip.create_model(arch)
    checkpoint = folder / "tiny-clip.pt"
    torch.save(model.state_dict(), checkpoint)
    return str(config), str(checkpoint)


@pytest.fixture(scope="session")
def embedder(tiny_model: tuple[str, str], model_cache: Path) -> Embedder:
    """The tiny model loaded through carmatch's real loading code (ONNX towers for single queries included)."""
    return load_clip(tiny_model[0], tiny_model[1], "cpu", cache_dir=model_cache)


def isolate_environment(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Run in ``folder`` with its own CARMATCH_HOME and no CARMATCH_* / AWS_* setting from outside.

    The working directory moves too, so no ``.env`` of the checkout is found and no relative
    ``data/`` folder of the checkout is touched.
    """
    for var in list(os.environ):
        if var.startswith(("CARMATCH_", "AWS_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("CARMATCH_HOME", str(folder / "home"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(folder / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(folder / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never wait on instance metadata
    monkeypatch.chdir(folder)


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServerAddress]:
    """One real Milvus server for the session (about 7 s to start), shared by every store test."""
    yield from running_server(tmp_path_factory.mktemp("milvus-server"))


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model cache for the session: the tiny model's weights hash and ONNX towers are made once, then reused."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_cache: Path) -> None:
    """Every test: its own CARMATCH_HOME and working directory, no developer variables or ``.env``."""
    isolate_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("CARMATCH_MODEL_CACHE", str(model_cache))
    PASSWORD_THROTTLE.reset()  # the one password brake is process-wide: no test inherits another's wrong tries


def tiny_model_environment(monkeypatch: pytest.MonkeyPatch, tiny_model: tuple[str, str]) -> None:
    """Point CARMATCH_MODEL / CARMATCH_PRETRAINED at the tiny model, on cpu, small batches."""
    monkeypatch.setenv("CARMATCH_MODEL", tiny_model[0])
    monkeypatch.setenv("CARMATCH_PRETRAINED", tiny_model[1])
    monkeypatch.setenv("CARMATCH_DEVICE", "cpu")
    monkeypatch.setenv("CARMATCH_BATCH_SIZE", "8")


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tiny_model: tuple[str, str]) -> Settings:
    """Settings of the test's isolated carmatch home using the tiny model."""
    tiny_model_environment(monkeypatch, tiny_model)
    return load_settings()


@pytest.fixture
def runtime(settings: Settings, embedder: Embedder) -> Runtime:
    """A Runtime over the isolated home, with the tiny model already loaded."""
    rt = Runtime(settings, embedder=embedder)
    yield rt
    rt.close()


@pytest.fixture
def car_folder(tmp_path: Path) -> Path:
    """A folder of drawn cars in several formats and subfolders (6 distinct images)."""
    return draw_car_folder(tmp_path / "cars")


def draw_car_folder(root: Path) -> Path:
    """Draw the 6 distinct cars of :func:`car_folder` into ``root``."""
    save_car(root / "red_sedan.jpg", "red", "sedan", seed=1)
    save_car(root / "blue_pickup.png", "blue", "pickup", seed=2)
    save_car(root / "sub" / "green_van.webp", "green", "van", seed=3)
    save_car(root / "sub" / "yellow_sedan.bmp", "yellow", "sedan", seed=4)
    save_car(root / "sub" / "deeper" / "black_pickup.jpeg", "black", "pickup", seed=5)
    save_car(root / "white_van.png", "white", "van", seed=6)
    return root


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Train with one torch thread: the machine is shared, and results must not depend on thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


UPLOAD_LIMIT = 1_000_000  # the served app's CARMATCH_MAX_UPLOAD_BYTES


@pytest.fixture(scope="session")
def served(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: tuple[str, str], embedder: Embedder
) -> Iterator[tuple[Runtime, str]]:
    """One app server over an indexed collection, shared by the HTTP tests: (its runtime, its URL)."""
    folder = tmp_path_factory.mktemp("served")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate_environment(monkeypatch, folder)
        tiny_model_environment(monkeypatch, tiny_model)
        monkeypatch.setenv("CARMATCH_MAX_UPLOAD_BYTES", str(UPLOAD_LIMIT))
        monkeypatch.setenv("CARMATCH_UPLOADS_PER_MINUTE", "10000")  # every browser test uploads from one address
        import app

        runtime = Runtime(load_settings(), embedder=embedder)
    runtime.ingestor().ingest_folder(draw_car_folder(folder / "cars"))
    for record in runtime.catalog.get_many(runtime.catalog.ids()).values():  # what the drawings show
        color, body = PurePath(record.path).stem.split("_")
        runtime.catalog.set_caption(
            record.id, f"a {color} {body}", "human", attributes={"color": color, "body_type": body}
        )
    demo = app.build_demo(runtime)
    options = app.launch_options(runtime.settings)
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, mcp_server=True, **options)
    try:
        yield runtime, demo.local_url
    finally:
        demo.close()
        runtime.close()
