"""Keyword ranking on the real Qdrant engine (embedded through qdrant-edge-py), where the client's
local mode differs: English stemming and BM25 over the text index, next to SQLite FTS5 (porter)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.support.api import ingest
from tests.support.fakes import FakeEncoder

CORPUS = [
    "She runs along the river every morning.",
    "The runner ran a marathon in the rain.",
    "Cats sleep on warm windowsills all afternoon.",
    "A sleeping cat purrs; cats purr when content.",
    "Green tea is steeped in hot water.",
    "Tea leaves, tea bags and teapots: a history of tea.",
]
# Query -> the chunks that must come first, best first, on both engines.
EXPECTED = {
    "running": [CORPUS[0]],  # "runs" stems to "run"; "ran" and "runner" do not
    "sleeping cats": [CORPUS[3], CORPUS[2]],  # both words, twice "cat" beats once
    "tea": [CORPUS[5], CORPUS[4]],  # term frequency counts (saturated)
    "marathon rain": [CORPUS[1]],
}


@pytest.fixture(params=["faiss", "edge"])
def engine(request: pytest.FixtureRequest, make_client, tmp_path) -> TestClient:
    """A client on FTS5 keyword search, or on Qdrant's engine embedded at a path."""
    if request.param == "faiss":
        client = make_client()
    else:
        client = make_client(
            index_backend="qdrant", qdrant_path=tmp_path / "edge", qdrant_edge=True
        )
    ingest(client, [{"text": text} for text in CORPUS])
    return client


@pytest.mark.parametrize("query", EXPECTED)
def test_keyword_ranking_matches_fts5(engine: TestClient, query: str) -> None:
    body = engine.post(
        "/api/search", json={"query": query, "mode": "keyword", "group_by": "chunk"}
    ).json()
    found = [hit["chunk"]["text"] for hit in body["hits"]]
    assert found[: len(EXPECTED[query])] == EXPECTED[query]


def test_filters_and_restart_on_the_engine(settings: Settings, tmp_path) -> None:
    edge = settings.model_copy(
        update={"index_backend": "qdrant", "qdrant_path": tmp_path / "edge", "qdrant_edge": True}
    )
    with TestClient(create_app(edge, load=lambda spec: FakeEncoder())) as client:
        client.app.state.engine.wait_ready(10)
        records = [{"text": text, "metadata": {"n": n % 2}} for n, text in enumerate(CORPUS)]
        ingest(client, records)
        body = client.post(
            "/api/search",
            json={"query": "tea", "mode": "keyword", "filters": {"metadata": {"n": 1}}},
        ).json()
        assert [hit["chunk"]["text"] for hit in body["hits"]] == [CORPUS[5]]
    with TestClient(create_app(edge, load=lambda spec: FakeEncoder())) as restarted:
        restarted.app.state.engine.wait_ready(10)
        assert restarted.app.state.indexes.check(1).ok
        hits = restarted.post("/api/search", json={"query": "windowsills"}).json()["hits"]
        assert hits[0]["chunk"]["text"] == CORPUS[2]
