"""``serve --embeddings-only``: the embeddings API alone, a stateless pool for ingestion."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_embeddings_app
from app.settings import Settings
from tests.support.fakes import FakeEncoder


def test_embeddings_only_serves_embeddings_and_health_but_no_store(tmp_path: Path) -> None:
    fake = FakeEncoder()
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)
    with TestClient(create_embeddings_app(settings, load=lambda spec: fake)) as client:
        client.app.state.engine.wait_ready(10)
        body = {"model": "all-MiniLM-L6-v2", "input": ["one", "two"]}
        response = client.post("/v1/embeddings", json=body)
        assert response.status_code == 200 and len(response.json()["data"]) == 2
        assert client.get("/health").json()["ready"] is True
        assert client.get("/api/documents").status_code == 404
    assert not (tmp_path / "data").exists()  # no database, no indexes
