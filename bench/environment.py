"""What every bench prints first and writes into its JSON: machine, load, versions, date, commit.

Timings on a shared machine are noisy, so each bench also measures its reference in the same run;
this module records the conditions beside them. ``record(name, ...)`` writes
``bench/results/<name>.json``, the input of ``bench/report.py`` (which writes docs/benchmarks.md).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ("numpy", "hnswlib", "chroma-hnswlib", "torch", "open_clip_torch", "onnxruntime", "gradio", "pillow")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return round(pages * size / 2**30, 1)
    except (ValueError, OSError):
        return 0.0


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Installed versions of the packages benches time (absent ones left out)."""
    found = {"python": platform.python_version()}
    for name in PACKAGES + extra:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def environment(extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The machine and its state now: CPU, cores, memory, load average, versions, UTC date, git commit."""
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores ({_cpu_model()}), "
        f"{_memory_gib()} GiB",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "versions": versions(extra),
        "commit": _commit(),
    }


def describe(env: dict[str, Any]) -> str:
    """One line for the top of a bench's output."""
    packages = " ".join(f"{k} {v}" for k, v in env["versions"].items())
    load = " ".join(f"{x:.2f}" for x in env["load_average"])
    return f"# {env['date']} | {env['machine']} | load {load} | commit {env['commit']}\n# {packages}"


def record(name: str, command: str, env: dict[str, Any], output: list[str], data: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json``: the command, the conditions, the printed lines and the figures."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "bench": name,
        "command": command,
        "environment": env,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "output": output,
        "data": data,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)
    return path


class Printer:
    """print() that also keeps the lines for the JSON record."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.extend(text.splitlines() or [""])
