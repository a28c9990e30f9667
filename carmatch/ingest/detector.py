"""The car detector run at ingest: a torchvision COCO detection model kept to its vehicle classes.

``CARMATCH_DETECTOR`` (or ``carmatch ingest --cars``) names a torchvision detection model; its COCO weights
are downloaded by torchvision once, into torch's hub cache (``$TORCH_HOME/hub/checkpoints``), and later runs
read them from there. Offline (``CARMATCH_OFFLINE`` / ``HF_HUB_OFFLINE``) or with download.pytorch.org out of
reach, loading fails at once with the file to fetch and where to put it, as the CLIP weights do.

The default, ``fasterrcnn_mobilenet_v3_large_fpn``, is torchvision's fastest detector that still sees small,
distant cars (COCO val2017 box AP 32.8; the 320 px variant and SSDlite score 22.8 and 21.3): see docs/traffic.md
for the measured CPU speed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from carmatch.config import Settings
from carmatch.embedding.weights import host_reachable
from carmatch.errors import ConfigError, ModelLoadError
from carmatch.ingest.boxes import Box, Detection

log = logging.getLogger(__name__)

DETECTOR_NONE = "none"
DEFAULT_DETECTOR = "fasterrcnn_mobilenet_v3_large_fpn"
# torchvision's COCO detection models that carmatch knows; their published COCO val2017 box AP.
DETECTOR_BOX_AP = {
    "fasterrcnn_mobilenet_v3_large_fpn": 32.8,
    "fasterrcnn_mobilenet_v3_large_320_fpn": 22.8,
    "ssdlite320_mobilenet_v3_large": 21.3,
    "retinanet_resnet50_fpn_v2": 41.5,
    "fasterrcnn_resnet50_fpn_v2": 46.7,
}
# COCO category ids as torchvision's 91-way heads number them.
VEHICLE_LABELS = {3: "car", 4: "motorcycle", 6: "bus", 8: "truck"}
WEIGHTS_HOST = ("download.pytorch.org", 443)
TINY_DETECTOR = "tiny-random"  # tests and benches: a small random-weight Faster R-CNN that favours "car"


class Detector(Protocol):
    """Finds the vehicles of frames: one list of detections per image, best first."""

    name: str

    def detect(self, images: Sequence[Image.Image]) -> list[list[Detection]]:
        """The vehicles found in each image."""
        ...


@dataclass(frozen=True)
class DetectorSettings:
    """Which detector, and which of its detections count as a car."""

    name: str = DEFAULT_DETECTOR
    min_score: float = 0.5
    min_side: int = 32  # pixels: a smaller box is a car too far away to describe or find
    device: str = "cpu"
    offline: bool = False


class TorchvisionDetector:
    """A torchvision detection model kept to COCO's vehicle classes, above a score and a size."""

    def __init__(self, model: Any, name: str, min_score: float, min_side: int, device: str = "cpu"):
        self.model = model.eval().to(device)
        self.name = name
        self.min_score = float(min_score)
        self.min_side = int(min_side)
        self.device = device

    def detect(self, images: Sequence[Image.Image]) -> list[list[Detection]]:
        """The vehicles of each image, best first (boxes clipped to the image)."""
        import torch
        from torchvision.transforms.functional import pil_to_tensor

        if not images:
            return []
        tensors = [pil_to_tensor(im.convert("RGB")).to(self.device, torch.float32) / 255.0 for im in images]
        with torch.inference_mode():
            outputs = self.model(tensors)
        found: list[list[Detection]] = []
        for image, out in zip(images, outputs):
            cars: list[Detection] = []
            for box, score, label in zip(out["boxes"].tolist(), out["scores"].tolist(), out["labels"].tolist()):
                name = VEHICLE_LABELS.get(int(label))
                if name is None or score < self.min_score:
                    continue
                x0, y0, x1, y1 = box
                clipped = Box(
                    max(0, math.floor(x0)),
                    max(0, math.floor(y0)),
                    min(image.width, math.ceil(x1)),
                    min(image.height, math.ceil(y1)),
                )
                if min(clipped.width, clipped.height) >= self.min_side:
                    cars.append(Detection(clipped, round(float(score), 4), name))
            found.append(sorted(cars, key=lambda d: -d.score))
        return found


def check_detector_name(name: str) -> str:
    """The detector name, or ConfigError naming the choices."""
    clean = name.strip()
    if clean in DETECTOR_BOX_AP or clean == TINY_DETECTOR:
        return clean
    raise ConfigError(
        f"CARMATCH_DETECTOR={name!r} is not a detector carmatch knows: use none or one of {', '.join(DETECTOR_BOX_AP)}."
    )


def load_detector(config: DetectorSettings, pretrained: bool = True) -> TorchvisionDetector:
    """Build the named detector with its COCO weights (downloaded once); ``pretrained=False`` keeps random weights."""
    name = check_detector_name(config.name)
    if name == TINY_DETECTOR:
        return tiny_detector(config.min_score, config.min_side)
    import torch
    from torchvision.models import get_model, get_model_weights

    weights = get_model_weights(name).DEFAULT
    local = weights_file(name, weights.url, config.offline) if pretrained else None  # fails fast, before building
    model = get_model(name, weights=None, weights_backbone=None)
    if local is not None:
        model.load_state_dict(torch.load(local, map_location="cpu"))
        label = f"{name}/{weights.name}"
    else:
        log.warning("Detector %s has random weights: its boxes mean nothing (benches only)", name)
        label = f"{name}/random"
    return TorchvisionDetector(model, label, config.min_score, config.min_side, config.device)


def weights_file(name: str, url: str, offline: bool) -> Path:
    """The local file of a detector's COCO weights: torch's hub cache, else downloaded once; fails fast offline."""
    import torch

    target = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if target.is_file():
        return target
    help_text = (
        f"download {url} on a machine with internet and put it at {target} (or set TORCH_HOME), "
        "or ingest without --cars (whole frames), or give boxes from another detector with --boxes FILE."
    )
    if offline:
        raise ModelLoadError(
            f"The COCO weights of detector {name} are not downloaded yet and downloads are off "
            f"(CARMATCH_OFFLINE or HF_HUB_OFFLINE): {help_text}"
        )
    if not host_reachable(*WEIGHTS_HOST):
        raise ModelLoadError(
            f"The COCO weights of detector {name} are not downloaded yet and {WEIGHTS_HOST[0]} cannot be reached: "
            f"{help_text}"
        )
    log.info("Downloading %s (once; later runs use %s)", url, target)
    try:
        torch.hub.download_url_to_file(url, str(target), progress=False)
    except Exception as exc:  # urllib / OSError / hash mismatch: all mean "no weights"
        raise ModelLoadError(f"Could not download the weights of detector {name}: {exc}. Or {help_text}") from exc
    return target


def tiny_detector(min_score: float = 0.3, min_side: int = 8, seed: int = 0) -> TorchvisionDetector:
    """A small Faster R-CNN with random weights whose class layer favours "car": the detector path, fast, for tests."""
    import torch
    from torch import nn
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    torch.manual_seed(seed)
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU())
    backbone.out_channels = 8  # type: ignore[assignment]
    model = FasterRCNN(
        backbone,
        num_classes=91,
        rpn_anchor_generator=AnchorGenerator(sizes=((32, 64),), aspect_ratios=((0.5, 1.0),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2),
        min_size=128,
        max_size=256,
        rpn_pre_nms_top_n_test=50,
        rpn_post_nms_top_n_test=20,
        box_score_thresh=0.0,
        box_detections_per_img=8,
    )
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.bias[3] = 6.0  # "car" wins most boxes
    return TorchvisionDetector(model, TINY_DETECTOR, min_score, min_side)


def detector_settings(settings: Settings, cars: bool = False) -> DetectorSettings | None:
    """The detector the settings ask for (``cars`` turns the default one on when CARMATCH_DETECTOR is none)."""
    name = settings.detector.strip() or DETECTOR_NONE
    if name.lower() == DETECTOR_NONE:
        if not cars:
            return None
        name = DEFAULT_DETECTOR
    return DetectorSettings(
        check_detector_name(name),
        settings.detector_min_score_percent / 100.0,
        settings.detector_min_side,
        settings.resolved_device,
        settings.offline,
    )
