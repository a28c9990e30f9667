"""Titan embedder overhead: embeddings/s through carmatch against a Stubber-answered client, beside the bare calls.

    python bench/titan_bench.py                       # 256 images of 1024x768, 8 calls at once
    python bench/titan_bench.py --images 512 --concurrency 16 --side 2500

The client is a real bedrock-runtime client whose answers come from botocore's Stubber, so no time is
spent at AWS: what is left is carmatch's own work per image (JPEG encode, shrinking to 2048 px,
base64, JSON, threads, parsing). The "bare" line sends pre-built bodies through the same client.
A real account adds Bedrock's latency and its requests-per-minute quota on top.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import boto3
import numpy as np
from botocore.response import StreamingBody
from botocore.stub import Stubber
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from carmatch.embedding.titan_embedder import TitanEmbedder  # noqa: E402

MODEL = "amazon.titan-embed-image-v1"


def stubbed_client(calls: int, dim: int) -> tuple[object, Stubber]:
    """A bedrock-runtime client with ``calls`` embedding answers queued."""
    client = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    data = json.dumps({"embedding": list(np.random.default_rng(0).normal(size=dim).astype(float))}).encode()
    for _ in range(calls):
        stub.add_response(
            "invoke_model", {"body": StreamingBody(io.BytesIO(data), len(data)), "contentType": "application/json"}
        )
    stub.activate()
    return client, stub


def main() -> None:
    """Print embeddings/s for carmatch's Titan path and for the bare client calls."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--side", type=int, default=1024, help="image width (height is 3/4 of it)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--dim", type=int, default=1024, choices=(256, 384, 1024))
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    size = (args.side, args.side * 3 // 4)
    images = [Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(8)]
    batch = [images[i % len(images)] for i in range(args.images)]

    client, _ = stubbed_client(args.images, args.dim)
    embedder = TitanEmbedder(client, MODEL, args.dim, args.concurrency)
    start = time.perf_counter()
    embedder.encode_images(batch)
    full = time.perf_counter() - start

    client, _ = stubbed_client(args.images, args.dim)
    bare = TitanEmbedder(client, MODEL, args.dim, args.concurrency)
    bodies = bare.preprocess_images(images) * (args.images // len(images) + 1)
    start = time.perf_counter()
    bare.encode_image_tensor(bodies[: args.images])
    calls = time.perf_counter() - start

    print(f"images {args.images} of {size[0]}x{size[1]}, {args.concurrency} calls at once, {args.dim} dims")
    print(f"carmatch Titan path : {args.images / full:8.1f} embeddings/s (encode + call + parse)")
    print(f"calls only (bodies ready): {args.images / calls:8.1f} embeddings/s")


if __name__ == "__main__":
    main()
