"""A real HTTP server (the app with the fake encoder, in a thread) and the CLI run as a user
would: a child process, no terminal, its own state directory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings
from tests.support.fakes import FakeEncoder
from tests.support.threaded import serving

CLI = [sys.executable, "-m", "app"]


class Served:
    """A running app: its URL and the app itself (for its store)."""

    def __init__(self, url: str, app: FastAPI) -> None:
        self.url, self.app = url, app


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start the app with setting overrides (e.g. a small upload limit); stopped at the end."""
    stack = []

    def start(**overrides: object) -> Served:
        settings = Settings(data_dir=tmp_path / f"data{len(stack)}", _env_file=None, **overrides)
        app = create_app(settings, load=lambda spec: FakeEncoder())
        context = serving(app)
        url = context.__enter__()
        stack.append(context)
        return Served(url, app)

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run ``embedsearch ARGS`` in a child process; returns its exit status and output."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env
        )

    return run
