"""The fast query path: ONNX towers verified against torch, the weights-hash cache, torch-free text queries."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from carmatch.embedding import embedder as embedder_module
from carmatch.embedding.clip_tokenizer import PROBE_TEXTS, ClipTokenizer, vocab_path
from carmatch.embedding.embedder import Embedder, load_clip
from carmatch.embedding.onnx_towers import VERIFY_TOLERANCE, TowerExportError
from tests.drawing import draw_car

REPO = Path(__file__).resolve().parents[2]


def torch_text(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """The torch model's unit vectors for ``texts`` (the source of truth)."""
    import torch

    with torch.inference_mode():
        feats = embedder.model.encode_text(embedder.tokenizer(texts)).numpy()
    return feats / np.linalg.norm(feats, axis=1, keepdims=True)


def test_single_queries_use_onnx_towers_that_match_torch(tiny_model: tuple[str, str], tmp_path: Path) -> None:
    embedder = load_clip(*tiny_model, device="cpu", cache_dir=tmp_path / "cache")
    assert embedder.fast is not None and embedder.fast.towers is not None
    texts = ["a red sedan", "dark blue hatchback with a roof rack"]
    fast = embedder.encode_texts(texts)
    assert np.abs(fast - torch_text(embedder, texts)).max() <= VERIFY_TOLERANCE
    image = draw_car("green", "van", size=(120, 90), seed=3)
    one = embedder.encode_images([image])  # a single query: ONNX with numpy preprocessing
    batch = embedder.encode_images([image, image])  # a batch: torch
    assert np.abs(one[0] - batch[0]).max() <= VERIFY_TOLERANCE


def test_text_tower_runs_only_up_to_the_end_token_and_matches_torch(embedder: Embedder) -> None:
    assert embedder.fast is not None and embedder.fast.towers is not None
    assert embedder.fast.towers.trims_text  # a short query costs a few positions, not the whole context
    texts = ["suv", "a dark blue hatchback with a roof rack", "a very long description " * 30]
    assert np.abs(embedder.encode_texts(texts) - torch_text(embedder, texts)).max() <= VERIFY_TOLERANCE
    for text in texts:  # alone, each is cut at its own end token
        assert np.abs(embedder.encode_texts([text]) - torch_text(embedder, [text])).max() <= VERIFY_TOLERANCE


def test_a_cut_text_tower_that_disagrees_with_torch_is_exported_at_full_length(
    tiny_model: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from carmatch.embedding import short_text

    def wrong(model: object) -> object:
        tower = short_text.short_text_tower(model)

        class Off(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.tower = tower

            def forward(self, tokens: torch.Tensor) -> torch.Tensor:
                return self.tower(tokens) + 0.1  # a subtly different vector

        return Off()

    monkeypatch.setattr("carmatch.embedding.onnx_towers.short_text_tower", wrong)
    embedder = load_clip(*tiny_model, device="cpu", cache_dir=tmp_path / "cache")
    assert embedder.fast is not None and embedder.fast.towers is not None
    assert not embedder.fast.towers.trims_text
    texts = ["suv", "a red sedan with a roof rack"]
    assert np.abs(embedder.encode_texts(texts) - torch_text(embedder, texts)).max() <= VERIFY_TOLERANCE


def test_second_load_reuses_the_cached_hash_without_hashing_or_exporting(
    tiny_model: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_clip(*tiny_model, device="cpu", cache_dir=tmp_path / "cache")

    def refuse(*args: object) -> None:
        raise AssertionError("hashed or exported again")

    monkeypatch.setattr(embedder_module, "weights_hash", refuse)
    monkeypatch.setattr(embedder_module, "prepare_record", refuse)
    second = load_clip(*tiny_model, device="cpu", cache_dir=tmp_path / "cache")
    assert second.model_key == first.model_key and second.dim == first.dim
    np.testing.assert_allclose(second.encode_texts(["a red car"]), first.encode_texts(["a red car"]), atol=1e-6)


def test_a_changed_checkpoint_misses_the_cache_and_gets_its_own_towers(
    tiny_model: tuple[str, str], tmp_path: Path
) -> None:
    import torch

    checkpoint = tmp_path / "run.pt"
    state = torch.load(tiny_model[1], weights_only=True)
    torch.save(state, checkpoint)
    before = load_clip(tiny_model[0], str(checkpoint), "cpu", cache_dir=tmp_path / "cache")
    state["text_projection"] = state["text_projection"] * 2 + 0.5  # a fine-tuned model, saved over the same path
    torch.save(state, checkpoint)
    os.utime(checkpoint, ns=(1, 1))  # even with an old modification time, the size+mtime stamp differs
    after = load_clip(tiny_model[0], str(checkpoint), "cpu", cache_dir=tmp_path / "cache")
    assert after.model_key != before.model_key
    assert after.fast is not None and after.fast.towers is not None
    assert after.fast.towers.folder != before.fast.towers.folder  # type: ignore[union-attr]
    assert np.abs(after.encode_texts(["suv"]) - torch_text(after, ["suv"])).max() <= VERIFY_TOLERANCE


def test_towers_of_a_deleted_checkpoint_are_removed_at_the_next_export(
    tiny_model: tuple[str, str], tmp_path: Path
) -> None:
    import torch

    from carmatch.embedding.model_cache import STALE_TOWERS_SECONDS

    state = torch.load(tiny_model[1], weights_only=True)
    state["text_projection"] = state["text_projection"] + 1.0
    temporary = tmp_path / "benchmark-weights.pt"
    torch.save(state, temporary)
    gone = load_clip(tiny_model[0], str(temporary), "cpu", cache_dir=tmp_path / "cache").fast
    assert gone is not None and gone.towers is not None
    temporary.unlink()
    old = 1_000_000_000  # long ago: not an export another process has in flight
    os.utime(gone.towers.folder, (old, old))
    assert STALE_TOWERS_SECONDS < 10**9
    kept = load_clip(*tiny_model, device="cpu", cache_dir=tmp_path / "cache").fast  # a new export prunes
    assert kept is not None and kept.towers is not None and kept.towers.folder.is_dir()
    assert not gone.towers.folder.exists()
    assert len(list((tmp_path / "cache" / "records").glob("*.json"))) == 1


def test_a_failed_export_falls_back_to_torch_and_says_why(
    tiny_model: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> float:
        raise TowerExportError("exporting the text.onnx tower failed: unsupported operator")

    monkeypatch.setattr("carmatch.embedding.fast_path.export_towers", broken)
    with caplog.at_level(logging.WARNING):
        embedder = load_clip(*tiny_model, device="cpu", cache_dir=tmp_path / "cache")
    assert "unsupported operator" in caplog.text
    assert embedder.fast is not None and embedder.fast.towers is None
    np.testing.assert_allclose(embedder.encode_texts(["a van"]), torch_text(embedder, ["a van"]), atol=1e-6)
    monkeypatch.setattr(embedder_module, "prepare_record", lambda *a: pytest.fail("export retried on every start"))
    again = load_clip(*tiny_model, device="cpu", cache_dir=tmp_path / "cache")  # the reason is remembered
    assert again.model_key == embedder.model_key
    assert again.encode_images([draw_car("red", "sedan", size=(64, 48), seed=1)]).shape == (1, embedder.dim)


def test_towers_onnx_runtime_cannot_run_are_refused_before_use(
    tiny_model: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unloadable(path: Path, threads: int) -> object:
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Reshape node cannot reshape")

    monkeypatch.setattr("carmatch.embedding.onnx_towers.open_session", unloadable)
    with caplog.at_level(logging.WARNING):
        embedder = load_clip(*tiny_model, device="cpu", cache_dir=tmp_path / "cache")
    assert "ONNX Runtime cannot run text.onnx" in caplog.text
    assert embedder.fast is not None and embedder.fast.towers is None
    assert not list((tmp_path / "cache" / "onnx").glob("*/towers.json"))  # nothing unverified is kept
    assert embedder.encode_texts(["a van"]).shape == (1, embedder.dim)


def test_torch_free_tokenizer_gives_open_clips_tokens(embedder: Embedder) -> None:
    path = vocab_path()
    assert path is not None
    fast = ClipTokenizer(path, embedder.context_length)
    texts = [*PROBE_TEXTS, "", "Mercedes-Benz E-Class 2012 !!! 🚙", "word " * 100]
    np.testing.assert_array_equal(fast(texts), embedder.tokenizer(texts).numpy())
    assert fast.encode("a red suv") == embedder.tokenizer.encode("a red suv")


def test_cli_text_and_photo_searches_never_import_torch_once_the_model_is_cached(
    monkeypatch: pytest.MonkeyPatch, tiny_model: tuple[str, str], tmp_path: Path
) -> None:
    from carmatch.config import load_settings
    from carmatch.runtime import Runtime
    from tests.conftest import draw_car_folder, tiny_model_environment

    tiny_model_environment(monkeypatch, tiny_model)
    monkeypatch.setenv("CARMATCH_MODEL_CACHE", str(tmp_path / "cache"))
    runtime = Runtime(load_settings())
    runtime.ingestor().ingest_folder(draw_car_folder(tmp_path / "cars"))  # the first load fills the cache
    runtime.close()
    script = (
        "import sys, json\nfrom admin.cli import main\n"
        "code = main(['search', 'red pickup', '--k', '3', '--json'])\n"
        f"code += main(['search', '--image', {str(tmp_path / 'cars' / 'red_sedan.jpg')!r}, '--k', '3', '--json'])\n"
        "print(json.dumps({'code': code, 'torch': 'torch' in sys.modules, 'open_clip': 'open_clip' in sys.modules}))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    *results, imports = done.stdout.strip().splitlines()
    text_hits, photo_hits = json.loads("[" + "\n".join(results).replace("]\n[", "],\n[") + "]")
    assert len(text_hits) == 3 and len(photo_hits) == 3  # the results, best first
    assert "red_sedan.jpg" in str(photo_hits[0])  # the photo finds itself: decoded as ingest decoded it
    assert json.loads(imports) == {"code": 0, "torch": False, "open_clip": False}


def test_the_app_answers_on_torch_while_a_new_checkpoint_exports_in_the_background(
    monkeypatch: pytest.MonkeyPatch, tiny_model: tuple[str, str], tmp_path: Path
) -> None:
    import threading

    from carmatch.embedding import fast_path

    release, real_prepare = threading.Event(), fast_path.prepare_record

    def slow_prepare(*args: object) -> object:
        assert release.wait(60)  # the export is held until the first answers are in
        return real_prepare(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(embedder_module, "prepare_record", slow_prepare)
    embedder = load_clip(*tiny_model, device="cpu", cache_dir=tmp_path / "cache", background_export=True)
    assert embedder.fast is None and embedder.export_thread is not None and embedder.export_thread.is_alive()
    texts = ["a red sedan", "dark blue hatchback"]
    on_torch = embedder.encode_texts(texts)  # answered while the export waits
    assert np.abs(on_torch - torch_text(embedder, texts)).max() <= VERIFY_TOLERANCE
    release.set()
    embedder.export_thread.join(60)
    assert embedder.fast is not None and embedder.fast.towers is not None  # later queries on ONNX Runtime
    assert np.abs(embedder.encode_texts(texts) - on_torch).max() <= VERIFY_TOLERANCE
    again = load_clip(*tiny_model, device="cpu", cache_dir=tmp_path / "cache")  # the next start: from the cache
    assert again.fast is not None and again.fast.towers is not None and again.export_thread is None
