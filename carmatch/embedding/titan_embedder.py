"""Titan Multimodal Embeddings on Bedrock as a search embedder, behind the open_clip Embedder's interface.

``CARMATCH_MODEL=bedrock/<model>`` selects it, where ``<model>`` is ``amazon.titan-embed-image-v1``, a
custom model's provisioned-throughput ARN, or another Titan model id. Each image or text is one
``invoke_model`` call (body ``inputImage`` / ``inputText`` + ``embeddingConfig.outputEmbeddingLength``);
a batch runs ``CARMATCH_TITAN_CONCURRENCY`` calls at once, and throttling is retried by botocore's
adaptive mode (client-side rate limiting). Vectors are cached per image hash under :attr:`model_key`
like CLIP ones, so a re-ingest or ``index rebuild`` calls Bedrock only for new images.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from carmatch.aws import CALL_ATTEMPTS, explain_aws_error, make_client
from carmatch.config import TITAN_EMBED_DIMS, Settings
from carmatch.embedding.embedder import Embedder, ModelSpec
from carmatch.embedding.vectors import unit_rows
from carmatch.errors import AwsError, ConfigError

log = logging.getLogger(__name__)

BEDROCK_MODEL_PREFIX = "bedrock/"
TITAN_ARCH = "titan"
TITAN_PRETRAINED = "bedrock"  # a Titan ModelSpec's pretrained source: the weights live on Bedrock
TITAN_MAX_IMAGE_SIDE = 2048  # pixels, each side (Titan Multimodal Embeddings G1 model card)
TITAN_MAX_IMAGE_BYTES = 25 * 1024 * 1024  # 25 MB per image
TITAN_MAX_TEXT_TOKENS = 256  # model card: max input text tokens
CHARS_PER_TOKEN_ESTIMATE = 4  # Titan's tokenizer is not published; the searcher's length note uses this estimate
JPEG_QUALITY = 92


def is_bedrock_model(name: str) -> bool:
    """True when ``CARMATCH_MODEL`` names a Bedrock (Titan) model rather than an open_clip one."""
    return name.startswith(BEDROCK_MODEL_PREFIX)


def encode_image(image: Image.Image) -> str:
    """``image`` as base64 JPEG within Titan's limits: longest side at most 2048 px, under 25 MB."""
    rgb = image.convert("RGB")
    if max(rgb.size) > TITAN_MAX_IMAGE_SIDE:
        rgb = rgb.copy()
        rgb.thumbnail((TITAN_MAX_IMAGE_SIDE, TITAN_MAX_IMAGE_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    if buffer.tell() > TITAN_MAX_IMAGE_BYTES:  # cannot happen at 2048x2048 JPEG, kept as the documented limit
        raise AwsError(f"An image is {buffer.tell():,} bytes as JPEG, over Titan's {TITAN_MAX_IMAGE_BYTES:,}.")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class TitanEmbedder(Embedder):
    """Titan Multimodal Embeddings through a ``bedrock-runtime`` client; vectors are unit length."""

    def __init__(self, client: Any, model_id: str, dim: int = 1024, concurrency: int = 8, region: str = ""):
        if dim not in TITAN_EMBED_DIMS:
            raise ConfigError(f"CARMATCH_EMBED_DIM={dim}: Titan offers {', '.join(map(str, TITAN_EMBED_DIMS))}")
        self.client = client
        self.model_id = model_id
        self.dim = dim
        self.concurrency = max(1, concurrency)
        self.region = region
        self.spec = ModelSpec(f"{BEDROCK_MODEL_PREFIX}{model_id}", TITAN_PRETRAINED)
        self.device = "bedrock"
        self.model = self.tokenizer = None
        self.preprocess = encode_image
        self.context_length = TITAN_MAX_TEXT_TOKENS
        # No weights to hash: the model id and vector length name the embedding space.
        self.weights_hash = hashlib.blake2b(f"{model_id}|{dim}".encode(), digest_size=16).hexdigest()

    @property
    def model_key(self) -> str:
        """Identity of this embedding space: ``titan-<dim>@<hash of model id and dim>``."""
        return f"{TITAN_ARCH}-{self.dim}@{self.weights_hash}"

    def describe(self) -> dict[str, str]:
        """What to record in a manifest about the model."""
        return {
            "model": self.spec.name,
            "arch": f"{TITAN_ARCH}-{self.dim}",
            "pretrained": self.spec.pretrained,
            "weights_hash": self.weights_hash,
            "model_key": self.model_key,
        }

    def _body(self, *, image: str | None = None, text: str | None = None) -> bytes:
        """The ``invoke_model`` body for one image (base64) or one text."""
        body: dict[str, Any] = {"embeddingConfig": {"outputEmbeddingLength": self.dim}}
        if image is not None:
            body["inputImage"] = image
        if text is not None:
            body["inputText"] = text
        return json.dumps(body).encode("utf-8")

    def _embed_one(self, body: bytes) -> list[float]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.invoke_model(
                modelId=self.model_id, body=body, contentType="application/json", accept="application/json"
            )
            answer = json.loads(response["body"].read())
        except (BotoCoreError, ClientError) as exc:
            raise explain_aws_error(exc, f"embed with {self.model_id}", self.region) from exc
        vector = answer.get("embedding") or []
        if len(vector) != self.dim:
            message = answer.get("message") or f"{len(vector)} numbers, expected {self.dim}"
            raise AwsError(f"Titan ({self.model_id}) returned no usable embedding: {message}")
        return [float(x) for x in vector]

    def _embed_all(self, bodies: Sequence[bytes]) -> np.ndarray:
        """Embed each body, ``concurrency`` calls at a time, in order; (N, dim) float32 unit vectors."""
        if not bodies:
            return np.zeros((0, self.dim), dtype=np.float32)
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(bodies))) as pool:
            rows = list(pool.map(self._embed_one, bodies))
        return unit_rows(np.asarray(rows, dtype=np.float32))

    def preprocess_images(self, images: Sequence[Image.Image]) -> list[bytes]:
        """Request bodies for RGB images (JPEG + base64, safe in a worker thread)."""
        return [self._body(image=encode_image(img)) for img in images]

    def encode_image_tensor(self, batch: Any) -> np.ndarray:
        """Embed request bodies from :meth:`preprocess_images`."""
        return self._embed_all(list(batch))

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Embed RGB images; returns an (N, dim) float32 array of unit vectors."""
        return self._embed_all(self.preprocess_images(images))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts; returns (N, dim) float32 unit vectors."""
        return self._embed_all([self._body(text=text) for text in texts])

    def count_tokens(self, text: str) -> int:
        """An estimate of Titan's token count (its tokenizer is not published): about 4 characters a token."""
        return max(1, math.ceil(len(text) / CHARS_PER_TOKEN_ESTIMATE))


def load_titan(name: str, settings: Settings, client: Any = None) -> TitanEmbedder:
    """The Titan embedder ``CARMATCH_MODEL=bedrock/<model>`` names, with a client for ``AWS_REGION``."""
    model_id = name.removeprefix(BEDROCK_MODEL_PREFIX).strip()
    if not model_id:
        raise ConfigError(f"CARMATCH_MODEL={name!r}: name the model, e.g. bedrock/amazon.titan-embed-image-v1")
    if ":custom-model/" in model_id:
        raise ConfigError(
            f"CARMATCH_MODEL={name!r} is a custom model, which Bedrock serves only through provisioned "
            "throughput: run .venv/bin/carmatch titan provision, then use bedrock/<provisioned-model ARN>."
        )
    if client is None:
        client = make_client("bedrock-runtime", settings.aws_region, total_attempts=CALL_ATTEMPTS, bulk=True)
    log.info("Titan embedder %s (%d dims, %d calls at once)", model_id, settings.embed_dim, settings.titan_concurrency)
    return TitanEmbedder(client, model_id, settings.embed_dim, settings.titan_concurrency, settings.aws_region)
