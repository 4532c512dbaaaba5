"""Serve an app built in the test process (say, with the fake encoder) over real HTTP, on
127.0.0.1 in a thread, so real clients (the CLI in a child process) can talk to it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from tests.support.server import free_port


@contextmanager
def serving(app: FastAPI, timeout: float = 20) -> Iterator[str]:
    """Run the app under uvicorn until the block ends; yields its base URL once it is ready."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not (server.started and app.state.engine.ready.is_set()):
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the app did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(30)
