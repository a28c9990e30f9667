"""Cold start: a CLI text search and `python app.py` until its first answer, next to bare open_clip scripts.

    python bench/cold_start.py                         # ViT-B-32-256 with random weights saved as a checkpoint
    python bench/cold_start.py --images 256 --runs 5
    python bench/cold_start.py --no-app                # the CLI search only

Set-up (not timed): a carmatch home with drawn cars ingested and the index built, and the model's
weights saved to a local checkpoint (the "cached weights" a Space keeps on /data); the ingest leaves
the model cache warm (weights hash, ONNX towers), as any earlier start would. Then, each in a fresh
process, alternated so all see the same background load:
(1) bare text: import open_clip, load the checkpoint, encode one text;
(2) CLI: `python -m admin search "red suv"`;
(3) bare load: import open_clip, load the checkpoint, tokenizer ready;
(4) app: run app.py and call /search with gradio_client until it answers.
Targets: CLI <= 0.6x bare text; app <= bare load + 5 s. Prints min and median and the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

BARE = """
import open_clip, sys
model, _, preprocess = open_clip.create_model_and_transforms(sys.argv[1], pretrained=sys.argv[2])
model.eval()
open_clip.get_tokenizer(sys.argv[1])
"""

BARE_TEXT = (
    BARE
    + """
import torch
with torch.inference_mode():
    model.encode_text(open_clip.get_tokenizer(sys.argv[1])(["red suv"]))
"""
)


def prepare(folder: Path, model: str, images: int) -> tuple[dict[str, str], str]:
    """A home with ``images`` cars indexed by ``model`` (random weights saved to a checkpoint); (env, checkpoint)."""
    import open_clip
    import torch

    from bench.search_bench import make_photos
    from carmatch.config import load_settings
    from carmatch.runtime import Runtime

    checkpoint = folder / "weights.pt"
    torch.save(open_clip.create_model(model).state_dict(), checkpoint)
    os.environ["CARMATCH_MODEL_CACHE"] = str(folder / "home" / "model-cache")  # this ingest's load_clip too
    env = {
        **os.environ,
        "CARMATCH_HOME": str(folder / "home"),
        "CARMATCH_MODEL_CACHE": str(folder / "home" / "model-cache"),
        "CARMATCH_MODEL": model,
        "CARMATCH_PRETRAINED": str(checkpoint),
        "CARMATCH_DEVICE": "cpu",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONPATH": str(REPO),
    }
    photos = folder / "photos"
    photos.mkdir()
    make_photos(photos, images)
    runtime = Runtime(load_settings(env))
    runtime.ingestor().ingest_folder(photos)
    runtime.close()
    return env, str(checkpoint)


def bare_load(env: dict[str, str], model: str, checkpoint: str, script: str = BARE) -> float:
    """Seconds for a fresh process to run ``script`` (import open_clip, load the checkpoint, ...)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", script, model, checkpoint], env=env, check=True)
    return time.perf_counter() - start


def cli_search(env: dict[str, str]) -> float:
    """Seconds for `python -m admin search "red suv"` in a fresh process."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "admin", "search", "red suv", "--k", "5"],
        env=env,
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def line(label: str, samples: list[float]) -> str:
    """One figure line: min and median of ``samples``."""
    return f"{label:58s} min {min(samples):5.2f} s  median {statistics.median(samples):5.2f} s"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_app(env: dict[str, str], timeout: float = 300) -> Iterator[tuple[subprocess.Popen[bytes], Any, float]]:
    """app.py started in a fresh process: (server, gradio client, seconds to its first /search answer)."""
    from gradio_client import Client

    port = free_port()
    start = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, str(REPO / "app.py")],
        env={**env, "GRADIO_SERVER_PORT": str(port)},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                client.predict("red car", None, 3, 0.5, "any", "any", "any", "any", "any", api_name="/search")
                break
            except Exception:  # not listening yet, or the model still loading: ask again
                if time.perf_counter() - start > timeout:
                    raise TimeoutError("the app did not answer a search in time") from None
                time.sleep(0.1)
        yield server, client, time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(30)


def cold_start(env: dict[str, str], timeout: float = 300) -> float:
    """Seconds from starting app.py to its first /search answer."""
    with running_app(env, timeout) as (_, _, seconds):
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B-32-256")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-app", action="store_true", help="time the CLI search only")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"bare_text": [], "cli": [], "bare": [], "app": []}
    with tempfile.TemporaryDirectory() as tmp:
        env, checkpoint = prepare(Path(tmp), args.model, args.images)
        load_before = os.getloadavg()[0]
        for _ in range(args.runs):  # alternated, so all see the same background load
            times["bare_text"].append(bare_load(env, args.model, checkpoint, BARE_TEXT))
            times["cli"].append(cli_search(env))
            if not args.no_app:
                times["bare"].append(bare_load(env, args.model, checkpoint))
                times["app"].append(cold_start(env))
        load_after = os.getloadavg()[0]
    print(
        f"model {args.model}, {args.images} images indexed, {args.runs} alternated runs, CPU ({os.cpu_count()} cores)"
    )
    print(f"load average (1 min) before {load_before:.2f}, after {load_after:.2f}")
    print(line("bare text (import open_clip + load checkpoint + 1 text):", times["bare_text"]))
    print(line("CLI text search (python -m admin search 'red suv'):", times["cli"]))
    ratio = statistics.median(times["cli"]) / statistics.median(times["bare_text"])
    print(f"CLI / bare text: {ratio:.2f}x median (target <= 0.6x): {'OK' if ratio <= 0.6 else 'MISSED'}")
    if args.no_app:
        return
    print(line("bare model load (import open_clip + load checkpoint):", times["bare"]))
    print(line("app cold start (python app.py -> first /search answered):", times["app"]))
    overhead = statistics.median(times["app"]) - statistics.median(times["bare"])
    print(f"app overhead: {overhead:+.1f} s median (target <= +5 s): {'OK' if overhead <= 5 else 'MISSED'}")


if __name__ == "__main__":
    main()
