"""Memory of the running app with 1k images, next to rclip and a bare open_clip process, same weights, one run.

    python bench/app_memory.py --rclip-path /tmp/rclip          # 1,000 drawn cars, ViT-B-32-256
    python bench/app_memory.py --images 200 --rounds 1

Set-up (not measured): a carmatch home with ``--images`` drawn cars ingested by ViT-B-32-256 with
random weights saved as a checkpoint (bench/cold_start.prepare), which leaves the model cache warm
(weights hash, ONNX towers) as any earlier start would. Then, each in a fresh process, alternated:
(1) app: ``python app.py``, one text search and one image search through /search, then its resident
    memory (VmRSS) and peak (VmHWM) from /proc;
(2) rclip: rclip's ``Model`` on ONNX files of the same weights (rclip is installed with
    ``pip install --no-deps --target DIR rclip==3.3.0``; skipped with a note when not importable),
    one text and one image query, then VmRSS / VmHWM;
(3) bare: import open_clip, load the checkpoint, encode one text and one image with torch.
Target (issue #15): the app <= 2x rclip's RSS. Prints min and median per contender and the load
average. Never asserted by tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.cold_start import prepare, running_app  # noqa: E402
from bench.query_bench import RCLIP_LEGAL_FILES, RCLIP_MODEL_DIR  # noqa: E402

MEMORY = """
def memory_mb():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
"""

RCLIP = (
    MEMORY
    + """
import sys
sys.path.insert(0, sys.argv[1])
from PIL import Image
from rclip.model import Model
model = Model()
model.compute_text_features(["red suv"])
model.compute_image_features([Image.open(sys.argv[2]).convert("RGB")])
print(*memory_mb())
"""
)

BARE = (
    MEMORY
    + """
import sys, open_clip, torch
from PIL import Image
model, _, preprocess = open_clip.create_model_and_transforms(sys.argv[1], pretrained=sys.argv[2])
model.eval()
tokenizer = open_clip.get_tokenizer(sys.argv[1])
with torch.inference_mode():
    model.encode_text(tokenizer(["red suv"]))
    model.encode_image(preprocess(Image.open(sys.argv[3]).convert("RGB")).unsqueeze(0))
print(*memory_mb())
"""
)


def process_memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of process ``pid`` in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def app_memory(env: dict[str, str], photo: Path, timeout: float = 300) -> tuple[float, float]:
    """(RSS, peak) in MB of app.py after answering one text and one image search."""
    from gradio_client import handle_file

    with running_app(env, timeout) as (server, client, _):  # answered the text search
        client.predict("", handle_file(str(photo)), 5, 0.5, "any", "any", "any", "any", "any", api_name="/search")
        return process_memory_mb(server.pid)


def rclip_datadir(home: Path, folder: Path) -> Path | None:
    """An RCLIP_DATADIR holding the ONNX towers carmatch exported for these weights; None when there are none."""
    from carmatch.embedding.clip_tokenizer import vocab_path

    texts = sorted(home.rglob("text.onnx"))
    if not texts:
        return None
    towers = texts[0].parent
    datadir = folder / "rclip"
    (datadir / RCLIP_MODEL_DIR).mkdir(parents=True)
    (datadir / "tokenizer").mkdir()
    shutil.copy(towers / "text.onnx", datadir / RCLIP_MODEL_DIR / "textual.onnx")
    shutil.copy(towers / "image.onnx", datadir / RCLIP_MODEL_DIR / "visual.onnx")
    shutil.copy(str(vocab_path()), datadir / "tokenizer" / "bpe_simple_vocab_16e6.txt.gz")
    for name in RCLIP_LEGAL_FILES:
        (datadir / name).write_text("placeholder: the weights are carmatch's random ones\n")
    return datadir


def script_memory(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(RSS, peak) in MB that a fresh ``python -c`` process prints."""
    out = subprocess.run([sys.executable, "-c", *args], env=env, check=True, capture_output=True, text=True)
    rss, peak = out.stdout.split()[-2:]
    return float(rss), float(peak)


def line(label: str, samples: list[tuple[float, float]]) -> str:
    """min and median RSS, and the largest peak, of ``samples``."""
    rss = [s[0] for s in samples]
    peak = max(s[1] for s in samples)
    return f"{label:8s} RSS min {min(rss):6.0f} MB  median {statistics.median(rss):6.0f} MB  peak {peak:6.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B-32-256")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rclip-path", default=os.environ.get("RCLIP_PATH"), help="folder rclip is installed in")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env, checkpoint = prepare(folder, args.model, args.images)
        photo = next((folder / "photos").iterdir())
        datadir = rclip_datadir(Path(env["CARMATCH_HOME"]), folder)
        note = ""
        if not args.rclip_path or not (Path(args.rclip_path) / "rclip").is_dir():
            note, datadir = (
                "rclip skipped: pass --rclip-path DIR (pip install --no-deps --target DIR rclip==3.3.0)",
                None,
            )
        elif datadir is None:
            note = "rclip skipped: no ONNX towers were exported for this model"
        results: dict[str, list[tuple[float, float]]] = {"app": [], "rclip": [], "bare": []}
        for _ in range(args.rounds):
            results["app"].append(app_memory(env, photo))
            if datadir is not None:
                rclip_env = {**env, "RCLIP_DATADIR": str(datadir)}
                results["rclip"].append(script_memory([RCLIP, str(args.rclip_path), str(photo)], rclip_env))
            results["bare"].append(script_memory([BARE, args.model, checkpoint, str(photo)], env))
        print(f"{args.model}, {args.images} images, {args.rounds} rounds, load average {os.getloadavg()[0]:.2f}")
        for name, samples in results.items():
            if samples:
                print(line(name, samples))
        if note:
            print(note)
        for other in ("rclip", "bare"):
            if results[other]:
                ratio = statistics.median(s[0] for s in results["app"]) / statistics.median(
                    s[0] for s in results[other]
                )
                print(f"app / {other}: {ratio:.2f}x median RSS" + ("  (target <= 2.00)" if other == "rclip" else ""))


if __name__ == "__main__":
    main()
