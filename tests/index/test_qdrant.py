"""The Qdrant backend's own promises: a foreign schema is refused, an unreachable or slow Qdrant
answers 503 while ingestion carries on and catches up, verify/repair and migration work."""

from __future__ import annotations

import socket
import threading
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from qdrant_client import QdrantClient, models

from app.cli.admin import migrate_index, verify
from app.errors import IndexSchemaError
from app.index.faiss import FaissIndex
from app.main import create_app
from app.settings import Settings
from app.store.filters import Filters
from tests.support.api import assert_error, ingest
from tests.support.fakes import FakeEncoder

TEXTS = ["Cats purr on warm windowsills.", "Dogs bark at the postman.", "Green tea steeps."]


@pytest.fixture
def qdrant_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={"index_backend": "qdrant", "qdrant_path": tmp_path / "qdrant"}
    )


class CountingEncoder(FakeEncoder):
    """The fake encoder, counting the texts it embeds."""

    texts = 0

    def encode(self, batch: list[list[int]]) -> np.ndarray:
        self.texts += len(batch)
        return super().encode(batch)


def documents(texts: list[str]) -> list[dict]:
    return [{"text": text, "metadata": {"n": n}} for n, text in enumerate(texts)]


def titles(client: TestClient, query: str, mode: str = "hybrid") -> list[str]:
    response = client.post("/api/search", json={"query": query, "mode": mode})
    assert response.status_code == 200, response.text
    return [hit["chunk"]["text"] for hit in response.json()["hits"]]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: a Qdrant that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_collection_of_another_size_is_refused_at_start_up(qdrant_settings: Settings) -> None:
    with TestClient(create_app(qdrant_settings, load=lambda spec: FakeEncoder())) as client:
        client.app.state.engine.wait_ready(10)
        ingest(client, documents(TEXTS))
    outsider = QdrantClient(path=str(qdrant_settings.qdrant_path))
    outsider.delete_collection("embedsearch_1")
    vectors = {"dense": models.VectorParams(size=8, distance=models.Distance.DOT)}
    outsider.create_collection("embedsearch_1", vectors_config=vectors)
    outsider.close()
    app = create_app(qdrant_settings, load=lambda spec: FakeEncoder())
    with (
        pytest.raises(IndexSchemaError, match="8 dimensions, Dot.*embedsearch reindex"),
        TestClient(app),
    ):
        pass
    app.state.indexes.close()


@pytest.mark.parametrize("fault", ["refused", "silent"])
def test_unavailable_qdrant_answers_503_and_ingestion_catches_up(
    make_client, tmp_path: Path, silent_port: int, fault: str
) -> None:
    client = make_client(index_backend="qdrant", qdrant_path=tmp_path / "qdrant", qdrant_timeout=1)
    ingest(client, documents(TEXTS[:2]))
    backend = client.app.state.indexes.backend
    working = backend.client
    port = silent_port if fault == "silent" else free_port()
    backend.client = QdrantClient(
        url=f"http://127.0.0.1:{port}", timeout=1, check_compatibility=False
    )

    error = assert_error(client.post("/api/search", json={"query": "tea"}), 503)
    assert error["code"] == "index_unavailable" and "Qdrant" in error["message"]
    ingest(client, documents(TEXTS[2:]))  # SQLite keeps it; the job does not fail
    assert client.app.state.store.get_collection("default").documents == 3

    backend.client.close()
    backend.client = working  # Qdrant is back: the next search catches the index up
    assert titles(client, "green tea steeps", "keyword") == [TEXTS[2]]
    assert client.app.state.indexes.check(1).ok


def test_verify_repairs_points_lost_from_qdrant(
    qdrant_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with TestClient(create_app(qdrant_settings, load=lambda spec: FakeEncoder())) as client:
        client.app.state.engine.wait_ready(10)
        ingest(client, documents(TEXTS))
    outsider = QdrantClient(path=str(qdrant_settings.qdrant_path))
    outsider.delete("embedsearch_1", models.PointIdsList(points=[1, 2]))
    outsider.close()
    assert verify(qdrant_settings, Namespace(repair=False)) == 1
    assert "MISMATCH" in capsys.readouterr().out
    verify(qdrant_settings, Namespace(repair=True))
    assert "2 missing, 0 extra; updated" in capsys.readouterr().out
    assert verify(qdrant_settings, Namespace(repair=False)) == 0
    assert "default: ok" in capsys.readouterr().out


def test_migrate_index_there_and_back_without_embedding(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    encoder = CountingEncoder()
    with TestClient(create_app(settings, load=lambda spec: encoder)) as client:
        client.app.state.engine.wait_ready(10)
        ingest(client, documents(TEXTS))
        before = titles(client, "cats and tea", "semantic")
    embedded = encoder.texts
    qdrant = settings.model_copy(
        update={"index_backend": "qdrant", "qdrant_path": settings.data_dir / "qdrant"}
    )
    (settings.data_dir / "indexes" / "1.faiss").unlink()  # it must come back from Qdrant
    # Still on FAISS, with Qdrant configured: the command copies to it.
    assert (
        migrate_index(qdrant.model_copy(update={"index_backend": "faiss"}), Namespace(to="qdrant"))
        == 0
    )
    assert "EMBEDSEARCH_INDEX_BACKEND=qdrant" in capsys.readouterr().out
    with TestClient(create_app(qdrant, load=lambda spec: encoder)) as client:
        client.app.state.engine.wait_ready(10)
        assert client.app.state.indexes.check(1).ok
        assert titles(client, "cats and tea", "semantic") == before
    assert encoder.texts == embedded + 1  # the query alone: no document was embedded again
    assert migrate_index(qdrant, Namespace(to="faiss")) == 0
    assert len(FaissIndex.load(settings.data_dir / "indexes" / "1.faiss")) == len(TEXTS)


def test_filters_translated_or_left_to_the_database(make_client, tmp_path: Path) -> None:
    client = make_client(index_backend="qdrant", qdrant_path=tmp_path / "qdrant")
    ingest(client, documents(TEXTS))
    indexes = client.app.state.indexes
    vector = np.ones(client.app.state.store.get_collection("default").dimensions, np.float32)
    for metadata in ({"n": 2}, {"n": {"$in": [2, 5]}}, {"n": {"$gte": 2}}, {"n": {"$ne": 0}}):
        semantic, keyword = indexes.candidates(1, vector, "tea", Filters(metadata=metadata), 10)
        expected = [3] if metadata != {"n": {"$ne": 0}} else [2, 3]
        assert sorted(i for i, _ in semantic) == expected, metadata
        assert [i for i, _ in keyword] == [3]
    assert indexes.candidates(1, vector, "tea", Filters(metadata={"n": {"$gt": 9}}), 10) == ([], [])
