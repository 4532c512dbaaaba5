"""Start and stop a real ``embedsearch`` server on 127.0.0.1 (used by benchmarks and tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

# One cache of ONNX builds (slow to make) for every benchmark: EMBEDSEARCH_MODELS_DIR, or else the
# checkout's data/models, where `embedsearch serve` run from the checkout keeps it too.
MODELS = Path(
    os.environ.get("EMBEDSEARCH_MODELS_DIR") or Path(__file__).resolve().parents[2] / "data/models"
)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(
    workdir: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """Run ``python -m app serve`` with its data under ``workdir``; yield (url, process, log).

    Every server shares the ONNX builds in ``MODELS``.
    """
    port = free_port()
    log = workdir / "server.log"
    full_env = {
        **os.environ,
        "EMBEDSEARCH_DATA_DIR": str(workdir / "data"),
        "EMBEDSEARCH_MODELS_DIR": str(MODELS),
        **(env or {}),
    }
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log, timeout)
        yield url, proc, log
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# What a server still loading its model gets to become ready: a first ONNX build (export,
# fusion, quantising, the quality guard) took over 120 s on a loaded 2-core machine.
LOADING_SECONDS = 900


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Wait until /health answers 200; raise with the server's log if it dies or stalls.

    ``timeout`` grows to LOADING_SECONDS while the server says it is loading its model.
    """
    start, limit = time.monotonic(), timeout
    while time.monotonic() - start < limit:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()}")
        try:
            response = httpx.get(f"{url}/health", timeout=2)
        except httpx.HTTPError:
            pass
        else:
            if response.status_code == 200:
                return
            if response.json().get("status") == "loading":
                limit = max(timeout, LOADING_SECONDS)
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {limit:.0f}s:\n{log.read_text()}")
