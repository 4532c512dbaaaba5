"""Shared fixtures: settings in a temporary data dir, an in-process app with the fake encoder,
and a real server (real model) on 127.0.0.1 for conformance tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.store.database import Store
from tests.support.api import API_KEY
from tests.support.fakes import FakeEncoder
from tests.support.postgres import empty_postgres, temporary_database
from tests.support.server import MODELS, running_server

# Servers started by tests share the checkout's cache of ONNX builds (where `embedsearch serve`
# keeps it), so a model is built once, not once per test's data directory.
os.environ.setdefault("EMBEDSEARCH_MODELS_DIR", str(MODELS))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", _env_file=None)


@pytest.fixture(params=["faiss", "qdrant"])
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings on each index backend in turn: FAISS files, then Qdrant embedded (local mode)."""
    return Settings(
        data_dir=tmp_path / "data",
        index_backend=request.param,
        qdrant_path=tmp_path / "qdrant",
        _env_file=None,
    )


@pytest.fixture
def store() -> Iterator[Store]:
    """An in-memory store."""
    store = Store(None)
    yield store
    store.close()


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


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real server with the real model, one API key and otherwise default settings."""
    env = {"EMBEDSEARCH_API_KEYS": API_KEY}
    with running_server(tmp_path_factory.mktemp("live"), env) as (url, _, log):
        yield url, log


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One throwaway PostgreSQL database for the session (creating one takes seconds)."""
    with temporary_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:  # noqa: ANN001 - a Path
    """An empty database that several Store instances (replicas) can open: a SQLite file, or
    the session's PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "shared.db")
    url = request.getfixturevalue("postgres_url")
    store = Store(url, pool_size=1)
    empty_postgres(store)
    store.close()
    return url
