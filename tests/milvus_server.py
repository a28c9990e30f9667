"""A real Milvus standalone server for the store tests and bench/store_bench.py: PyPI's ``milvus``
package (Milvus 2.3.5 with embedded etcd, Linux x86_64), started once per test session with
authentication on.

Milvus Lite answers every read at once; a server does not (reads default to Bounded consistency,
indexes build in the background, credentials are checked), so the contract suite runs on both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT_TOKEN = "root:Milvus"  # the credentials of a new Milvus server with authorization enabled


@dataclass(frozen=True)
class MilvusServerAddress:
    """Where the session's server listens and the token it accepts."""

    uri: str
    token: str


def start_server(base: Path, authorization: bool = False) -> Any:
    """A started ``milvus.MilvusServer`` with its data under ``base`` (the caller stops it)."""
    from milvus import MilvusServer

    server = MilvusServer()
    if authorization:
        server.config.set("authorization_enabled", True)  # constructor keywords do not reach the config file
    server.set_base_dir(str(base))
    cwd = os.getcwd()  # MilvusServer.start changes directory while it launches the binary
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    finally:
        os.chdir(cwd)
    return server


def running_server(base: Path) -> Iterator[MilvusServerAddress]:
    """Start a server with authentication under ``base``; stop it when the generator closes."""
    pytest.importorskip("milvus", reason="the `milvus` server package (requirements-dev.txt) is Linux-only")
    try:
        server = start_server(base, authorization=True)
    except (TimeoutError, RuntimeError) as exc:
        log = base / "logs" / "milvus-stdout.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        pytest.fail(f"The Milvus test server did not start ({exc}); is another one running (etcd port 2380)?\n{tail}")
    try:
        yield MilvusServerAddress(f"http://127.0.0.1:{server.listen_port}", ROOT_TOKEN)
    finally:
        server.stop()
