"""The browser's round trip: the public search API beside the library call and an empty endpoint.

    python bench/api_bench.py                 # 300 drawn cars, ViT-B-32-256 with random weights
    python bench/api_bench.py --images 1000 --queries 30

Set-up (not timed): a home with drawn cars indexed (bench/cold_start.py's ``prepare``). Then, with
the same text and photo queries: (1) the library call, ``runtime.search`` in this process;
(2) the app: ``python app.py`` in its own process, its ``/search`` endpoint (the one the page calls,
the gallery included) through gradio_client without downloading files; (3) the ten gallery
thumbnails of each answer fetched over HTTP (first fetch; a browser keeps them for a year after,
see the Cache-Control printed); (4) an empty Gradio endpoint (returns its input) in its own process:
the queue's and the client's own cost. Prints p50s, the API / library ratio, bytes per thumbnail,
machine and load; writes bench/results/api_bench.json. Never asserted by tests.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.cold_start import free_port, prepare, running_app  # noqa: E402
from bench.environment import Printer, describe, environment, record  # noqa: E402

TEXTS = ("red suv", "white van from the side", "black sedan", "blue hatchback", "silver pickup truck")
EMPTY_APP = """
import sys, gradio as gr
with gr.Blocks() as demo:
    box = gr.Textbox()
    gr.Button().click(lambda text: text, box, box, api_name="empty")
demo.queue().launch(server_port=int(sys.argv[1]), prevent_thread_lock=False)
"""


def p50(samples: list[float]) -> float:
    """Median in milliseconds."""
    return float(np.median(samples) * 1000)


def timed(call: Callable[[int], Any], rounds: int, warm: int = 2) -> tuple[list[float], Any]:
    """Seconds of each of ``rounds`` calls ``call(i)`` after ``warm`` unmeasured ones; the last answer."""
    answer = None
    for i in range(warm):
        answer = call(i)
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        answer = call(i)
        times.append(time.perf_counter() - start)
    return times, answer


def gallery_urls(answer: Any) -> list[str]:
    """The thumbnail URLs of a /search answer (its first output is the gallery)."""
    gallery = answer[0] if isinstance(answer, (list, tuple)) else answer
    urls = []
    for item in gallery or []:
        image = item.get("image", item) if isinstance(item, dict) else item[0]
        urls.append(image["url"] if isinstance(image, dict) else str(image))
    return urls


def empty_endpoint(rounds: int, timeout: float = 120) -> list[float]:
    """Seconds per call of an endpoint that returns its input, in a Gradio app of its own."""
    from gradio_client import Client

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", EMPTY_APP, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        start = time.perf_counter()
        while True:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:  # not listening yet
                if time.perf_counter() - start > timeout:
                    raise TimeoutError("the empty app did not start") from None
                time.sleep(0.2)
        return timed(lambda i: client.predict(f"x{i}", api_name="/empty"), rounds)[0]
    finally:
        server.terminate()
        server.wait(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32-256")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args(argv)
    import httpx

    from carmatch.config import load_settings
    from carmatch.runtime import Runtime

    out = Printer()
    env = environment(("gradio_client", "httpx"))
    out(describe(env))
    data: dict[str, Any] = {"images": args.images, "queries": args.queries}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        app_env, _ = prepare(folder, args.model, args.images)
        photo = str(sorted((folder / "photos").iterdir())[0])
        runtime = Runtime(load_settings(app_env))
        text_lib, _ = timed(lambda i: runtime.search(text=f"{TEXTS[i % len(TEXTS)]} {i}", k=10), args.queries)
        photo_lib, _ = timed(lambda i: runtime.search(image=photo, k=10), args.queries)
        runtime.close()
        data["library"] = {"text_p50_ms": p50(text_lib), "photo_p50_ms": p50(photo_lib)}
        unlimited = {  # the bench is one client asking many times: lift the per-visitor limits
            "CARMATCH_SEARCH_PER_MINUTE": "100000",
            "CARMATCH_UPLOADS_PER_MINUTE": "100000",
            "CARMATCH_UPLOAD_BYTES_PER_HOUR": str(2**40),
        }
        with running_app({**app_env, **unlimited}) as (_, client, _):
            from gradio_client import Client, handle_file

            client = Client(client.src, verbose=False, download_files=False)
            filters = ("any", "any", "any", "any", "any")

            def api(text: str, image: Any) -> Callable[[int], Any]:
                return lambda i: client.predict(text.format(i=i), image, 10, 0.5, *filters, api_name="/search")

            text_api, answer = timed(api("red car {i}", None), args.queries)
            photo_api, _ = timed(api("", handle_file(photo)), args.queries)
            urls = gallery_urls(answer)
            base = client.src.rstrip("/")
            fetches, sizes, cache_control = [], [], ""
            with httpx.Client() as http:
                for url in urls:
                    full = url if url.startswith("http") else f"{base}{url}"
                    start = time.perf_counter()
                    reply = http.get(full)
                    fetches.append(time.perf_counter() - start)
                    sizes.append(len(reply.content))
                    cache_control = reply.headers.get("cache-control", "(none)")
        empty = empty_endpoint(args.queries)
    lib, api_p50 = data["library"], {"text_p50_ms": p50(text_api), "photo_p50_ms": p50(photo_api)}
    data.update(
        api=api_p50,
        empty_p50_ms=p50(empty),
        thumbnails={
            "count": len(sizes),
            "p50_ms": p50(fetches) if fetches else 0.0,
            "total_ms": sum(fetches) * 1000,
            "mean_bytes": float(np.mean(sizes)) if sizes else 0.0,
            "cache_control": cache_control,
        },
    )
    out(f"\n{args.images} drawn cars, {args.queries} queries of each kind, k=10")
    out(f"empty Gradio endpoint            p50 {data['empty_p50_ms']:8.1f} ms")
    for kind in ("text", "photo"):
        ratio = api_p50[f"{kind}_p50_ms"] / lib[f"{kind}_p50_ms"]
        out(
            f"{kind:5s} library runtime.search  p50 {lib[f'{kind}_p50_ms']:8.1f} ms | public /search API p50 "
            f"{api_p50[f'{kind}_p50_ms']:8.1f} ms = {ratio:.2f}x library"
        )
    thumbs = data["thumbnails"]
    out(
        f"gallery thumbnails: {thumbs['count']} fetched, p50 {thumbs['p50_ms']:.1f} ms each, "
        f"{thumbs['total_ms']:.0f} ms together, {thumbs['mean_bytes'] / 1024:.1f} KB each; "
        f"Cache-Control: {thumbs['cache_control']}"
    )
    out(f"# load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    command = "python bench/api_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"wrote {record('api_bench', command.strip(), env, out.lines, data)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
