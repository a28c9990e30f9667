"""Single queries through ONNX Runtime: the CLIP towers exported from the torch model, verified against it.

The torch model stays the source of truth (training, batches); its text and image towers are exported
to ONNX once per weights hash, into the model cache, and each exported tower's output is checked
against torch's on probe inputs to VERIFY_TOLERANCE before it is used. ONNX Runtime answers a
single query faster than torch on a CPU (rclip's route), needs no torch import, and runs on a
query-sized thread pool that does not spin (so a busy machine does not slow a query several-fold).
Each tower loads only when the first query of its kind arrives.
"""

from __future__ import annotations

import json
import logging
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from carmatch.atomic import replace_dir, staging_dir
from carmatch.embedding.short_text import short_text_tower, trim_tokens
from carmatch.embedding.vectors import unit_rows

log = logging.getLogger(__name__)

ONNX_OPSET = 17
VERIFY_TOLERANCE = 1e-4  # largest difference allowed between torch's and ONNX Runtime's unit vectors
QUERY_THREADS = 2  # ONNX Runtime threads per query (no spinning: idle threads sleep, so contention stays cheap)
TEXT_FILE, IMAGE_FILE, META_FILE = "text.onnx", "image.onnx", "towers.json"
PROBE_SEED = 0
_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


class TowerExportError(Exception):
    """The towers could not be exported, or their output differs from torch's."""


def onnx_missing() -> str | None:
    """Why the ONNX route cannot run here (a package missing), else None."""
    import importlib.util

    for name in ("onnxruntime", "onnx"):
        if importlib.util.find_spec(name) is None:
            return f"the {name} package is not installed"
    return None


def preprocess_params(transform: Any) -> dict[str, Any] | None:
    """open_clip's eval transform as plain numbers (shortest-side resize, centre crop, normalise), else None."""
    steps = list(getattr(transform, "transforms", []))
    kinds = [type(step).__name__ for step in steps]
    if len(steps) != 5 or kinds[:2] != ["Resize", "CenterCrop"] or kinds[4] != "Normalize":
        return None
    resize, crop, normalize = steps[0], steps[1], steps[4]
    size, interpolation = resize.size, str(getattr(resize.interpolation, "value", resize.interpolation))
    size = size[0] if isinstance(size, (list, tuple)) and len(size) == 1 else size
    if not isinstance(size, int) or interpolation not in _RESAMPLE or resize.max_size is not None:
        return None
    crop_h, crop_w = crop.size
    mean, std = [float(v) for v in normalize.mean], [float(v) for v in normalize.std]
    return {
        "resize": size,
        "crop": [int(crop_h), int(crop_w)],
        "interpolation": interpolation,
        "mean": mean,
        "std": std,
    }


def preprocess_image(image: Image.Image, params: dict[str, Any]) -> np.ndarray:
    """One RGB image as the model's (3, H, W) float32 input, as open_clip's eval transform makes it."""
    width, height = image.size
    short = params["resize"]
    if width <= height:
        size = (short, int(short * height / width))
    else:
        size = (int(short * width / height), short)
    if size != (width, height):
        image = image.resize(size, _RESAMPLE[params["interpolation"]])
    crop_h, crop_w = params["crop"]
    left, top = int(round((size[0] - crop_w) / 2.0)), int(round((size[1] - crop_h) / 2.0))
    image = image.crop((left, top, left + crop_w, top + crop_h)).convert("RGB")
    pixels = np.asarray(image, dtype=np.float32) / np.float32(255.0)
    mean, std = np.asarray(params["mean"], dtype=np.float32), np.asarray(params["std"], dtype=np.float32)
    return np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1))


class OnnxTowers:
    """The exported text and image towers of one model, each loaded on first use."""

    def __init__(self, folder: Path, threads: int = QUERY_THREADS):
        self.folder = Path(folder)
        self.threads = threads
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._trims: bool | None = None

    def _session(self, name: str) -> Any:
        found = self._sessions.get(name)
        if found is not None:
            return found
        with self._lock:
            if name not in self._sessions:
                self._sessions[name] = open_session(self.folder / name, self.threads)
            return self._sessions[name]

    @property
    def trims_text(self) -> bool:
        """True when the text tower takes tokens cut after the end token (see :func:`trim_tokens`)."""
        if self._trims is None:
            self._trims = bool(json.loads((self.folder / META_FILE).read_text()).get("text_trim", False))
        return self._trims

    def encode_text(self, tokens: np.ndarray) -> np.ndarray:
        """Unit vectors for (N, context) int64 tokens."""
        tokens = trim_tokens(tokens) if self.trims_text else tokens
        (out,) = self._session(TEXT_FILE).run(None, {"input": np.ascontiguousarray(tokens, dtype=np.int64)})
        return unit_rows(np.asarray(out, dtype=np.float32))

    def encode_image(self, batch: np.ndarray) -> np.ndarray:
        """Unit vectors for an (N, 3, H, W) float32 batch."""
        (out,) = self._session(IMAGE_FILE).run(None, {"input": np.ascontiguousarray(batch, dtype=np.float32)})
        return unit_rows(np.asarray(out, dtype=np.float32))


def open_session(path: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session for one tower, with ``threads`` non-spinning threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: no "GPU device discovery failed" warnings on CPU machines
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _tower_modules(model: Any) -> tuple[Any, Any]:
    import torch

    class TextTower(torch.nn.Module):
        def __init__(self, clip: Any):
            super().__init__()
            self.clip = clip

        def forward(self, tokens: Any) -> Any:
            return self.clip.encode_text(tokens)

    class ImageTower(torch.nn.Module):
        def __init__(self, clip: Any):
            super().__init__()
            self.clip = clip

        def forward(self, pixels: Any) -> Any:
            return self.clip.encode_image(pixels)

    return TextTower(model), ImageTower(model)


def _export(tower: Any, sample: np.ndarray, path: Path, axes: dict[int, str]) -> None:
    """``torch.onnx.export`` of one tower traced on ``sample``'s first row; ``axes`` are the input's open dimensions."""
    import torch

    with warnings.catch_warnings():  # not no_grad: that picks attention kernels ONNX cannot express
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        try:
            torch.onnx.export(
                tower,
                (torch.from_numpy(sample[:1]),),
                str(path),
                dynamo=False,
                opset_version=ONNX_OPSET,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": axes, "output": {0: "batch"}},
            )
        except Exception as exc:  # the exporter raises many types for unsupported operators
            raise TowerExportError(f"exporting the {path.name} tower failed: {exc}") from exc


def _export_text(model: Any, full: Any, tokens: np.ndarray, path: Path) -> tuple[float, bool]:
    """The text tower cut after the end token if its export matches ``full``, else full-length; (difference, cut)."""
    short = short_text_tower(model)
    if short is not None:
        try:
            _export(short, trim_tokens(tokens[:1]), path, {0: "batch", 1: "tokens"})
            return _verify(full, tokens, path, trim_tokens), True
        except TowerExportError as exc:
            log.info("The text tower cut after the end token did not verify (%s); exporting it at full context", exc)
    _export(full, tokens, path, {0: "batch"})
    return _verify(full, tokens, path), False


def export_towers(model: Any, tokens: np.ndarray, image_shape: tuple[int, int, int], dest: Path) -> float:
    """Export ``model``'s towers to ``dest`` and verify them on ``tokens`` and seeded images; the largest difference.

    ``tokens`` should mix short texts with one that fills the context. ``dest`` appears only complete
    and verified (built in a staging folder, then renamed); a folder another process finished first is kept.
    """
    text_tower, image_tower = _tower_modules(model)
    pixels = np.random.default_rng(PROBE_SEED).standard_normal((2, *image_shape)).astype(np.float32)
    with staging_dir(dest.parent, prefix=f".{dest.name}-") as staging:
        text_worst, cut = _export_text(model, text_tower, tokens, staging / TEXT_FILE)
        _export(image_tower, pixels, staging / IMAGE_FILE, {0: "batch"})
        worst = max(text_worst, _verify(image_tower, pixels, staging / IMAGE_FILE))
        meta = {"max_difference": worst, "opset": ONNX_OPSET, "text_trim": cut}
        (staging / META_FILE).write_text(json.dumps(meta))
        if (dest / META_FILE).is_file():
            return worst  # another process exported the same weights meanwhile
        replace_dir(staging, dest)
    return worst


def _verify(tower: Any, sample: np.ndarray, path: Path, prepare: Any = None) -> float:
    """The largest difference between torch's and ONNX Runtime's unit vectors for ``sample`` (whole batch and each row).

    ``prepare`` turns torch's input into the exported tower's (:func:`trim_tokens`).
    """
    import torch

    with torch.inference_mode():
        expected = unit_rows(tower(torch.from_numpy(sample)).float().numpy())
    worst = 0.0
    try:
        session = open_session(path, 1)
        for start, stop in [(0, len(sample)), *((row, row + 1) for row in range(len(sample)))]:
            batch = sample[start:stop]
            (got,) = session.run(None, {"input": prepare(batch) if prepare else batch})
            got = unit_rows(np.asarray(got, np.float32))
            worst = max(worst, float(np.abs(got - expected[start:stop]).max()))
    except Exception as exc:  # onnxruntime raises its own types for a graph it cannot load or run
        raise TowerExportError(f"ONNX Runtime cannot run {path.name}: {str(exc).splitlines()[0]}") from exc
    if not worst <= VERIFY_TOLERANCE:
        raise TowerExportError(f"{path.name} differs from torch by {worst:.2e} (more than {VERIFY_TOLERANCE:g})")
    return worst
