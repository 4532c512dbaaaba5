"""Shared fixtures: settings in a temporary data dir, an in-process app with the fake encoder,
and a real server (real model) on 127.0.0.1 for conformance tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.fakes import FakeEncoder

API_KEY = "test-key-123"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", _env_file=None)


@pytest.fixture
def make_client(settings: Settings) -> Iterator:
    """Build a TestClient over an app with the fake encoder and optional setting overrides."""
    clients: list[TestClient] = []

    def make(encoder: FakeEncoder | None = None, **overrides: object) -> TestClient:
        fake = encoder or FakeEncoder()
        app = create_app(settings.model_copy(update=overrides), load=lambda spec: fake)
        client = TestClient(app).__enter__()
        clients.append(client)
        app.state.engine.wait_ready(10)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str, Path]:
    """Start ``python -m app serve`` on a free port and wait until /health says ready."""
    port = free_port()
    log = tmp / "server.log"
    full_env = {**os.environ, "EMBEDSEARCH_DATA_DIR": str(tmp / "data"), **env}
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url, log
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server not ready: {log.read_text()}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real server with the real model, one API key and an OpenAI-style alias."""
    tmp = tmp_path_factory.mktemp("live")
    proc, url, log = start_server(
        tmp,
        {
            "EMBEDSEARCH_API_KEYS": API_KEY,
            "EMBEDSEARCH_MODEL_ALIASES": '{"text-embedding-3-small": "all-MiniLM-L6-v2"}',
        },
    )
    yield url, log
    stop_server(proc)
