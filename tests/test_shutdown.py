"""Stopping the server never waits on a file being read: the extraction child dies with it."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.hostile import many_pages_pdf
from tests.support.server import running_server

pytestmark = pytest.mark.model

# About an hour of parsing at full speed, far past every limit the test leaves in force.
SLOW_PDF = many_pages_pdf(2000, 1_000_000)


def extraction_children(pid: int) -> list[int]:
    """Pids of the server's sandboxed extraction processes."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"app.ingest.sandbox" in command:
                found.append(int(child))
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return " Z " not in Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False


def post_quietly(url: str) -> None:
    """Upload the slow PDF; whatever answer the stopping server gives (or none) is fine."""
    with contextlib.suppress(httpx.TransportError):
        httpx.post(f"{url}/api/documents", files={"files": ("slow.pdf", SLOW_PDF)}, timeout=120)


def test_stopping_does_not_wait_on_an_extraction(tmp_path: Path) -> None:
    env = {
        "EMBEDSEARCH_EXTRACT_CPU_SECONDS": "3600",
        "EMBEDSEARCH_EXTRACT_TIMEOUT": "3600",
        "EMBEDSEARCH_SHUTDOWN_TIMEOUT": "5",
    }
    with running_server(tmp_path, env) as (url, proc, log):
        # A lone file is read before the answer: the request stays open while its child works.
        upload = threading.Thread(target=post_quietly, args=(url,), daemon=True)
        upload.start()
        deadline = time.monotonic() + 30
        while not (children := extraction_children(proc.pid)):
            assert time.monotonic() < deadline, "no extraction process started"
            time.sleep(0.1)
        start = time.monotonic()
        proc.terminate()
        proc.wait(60)
        stopped = time.monotonic() - start
    assert stopped < 15, f"stopping took {stopped:.1f} s:\n{log.read_text()}"
    assert not any(alive(child) for child in children), "the extraction outlived the server"
