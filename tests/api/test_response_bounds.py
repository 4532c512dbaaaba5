"""Metadata is bounded on the way in, and what a response carries is bounded on the way out."""

from __future__ import annotations

import json

import numpy as np

from app.store.records import ChunkRecord
from tests.support.api import assert_error


def nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_deep_metadata_is_refused(client) -> None:
    body = {"text": "deep", "metadata": nested(17)}
    error = assert_error(client.post("/api/documents", json=body), 400, "metadata")
    assert "EMBEDSEARCH_MAX_METADATA_DEPTH" in error["message"]
    record = json.dumps({"text": "deeper", "metadata": nested(500)}).encode()
    response = client.post("/api/documents", files={"files": ("deep.json", record)})
    assert "EMBEDSEARCH_MAX_METADATA_DEPTH" in assert_error(response, 400)["message"]
    assert client.get("/api/documents").json()["total"] == 0


def test_big_metadata_and_titles_are_refused(make_client) -> None:
    client = make_client(max_metadata_bytes=1000, max_title_chars=20)
    body = {"text": "big", "metadata": {"blob": "x" * 2000}}
    error = assert_error(client.post("/api/documents", json=body), 400, "metadata")
    assert "EMBEDSEARCH_MAX_METADATA_BYTES" in error["message"]
    error = assert_error(client.post("/api/documents", json={"text": "t", "title": "x" * 21}), 400)
    assert "EMBEDSEARCH_MAX_TITLE_CHARS" in error["message"]
    ok = client.post("/api/documents?wait=true", json={"text": "t", "metadata": {"a": 1}})
    assert ok.json()["state"] == "done"


def test_a_stored_record_from_before_the_limits_breaks_nothing(client) -> None:
    """A record stored before the limits existed (nested 500 deep) is listed, read and found."""
    client.post("/api/documents?wait=true", json={"text": "an ordinary document"})
    store = client.app.state.store
    collection = store.get_collection("default")
    fields = {
        "title": "old",
        "source_name": "old.json",
        "source_type": "json",
        "size": 3,
        "content_hash": "0" * 64,
        "metadata": nested(500),
        "text": "old deep record",
    }
    vector = np.ones((1, collection.dimensions), np.float32) / np.sqrt(collection.dimensions)
    added = store.add_document(
        collection.id, fields, [ChunkRecord(0, "old deep record", 0, 15, 3)], vector
    )
    client.app.state.indexes.add(collection.id, np.array(added.chunk_ids, np.int64), vector)
    listing = client.get("/api/documents")
    assert listing.status_code == 200
    shown = {d["title"]: d["metadata"] for d in listing.json()["data"]}
    assert "_unshown" in shown["old"]
    assert client.get(f"/api/documents/{added.document_id}").status_code == 200
    for mode in ("hybrid", "keyword", "semantic"):
        response = client.post("/api/search", json={"query": "old deep record", "mode": mode})
        assert response.status_code == 200, response.text


def test_hit_text_is_capped_and_flagged(make_client) -> None:
    client = make_client(max_hit_chars=30)
    client.post("/api/documents?wait=true", json={"text": "a fairly long sentence " * 5})
    [hit] = client.post("/api/search", json={"query": "sentence"}).json()["hits"]
    assert len(hit["chunk"]["text"]) == 30
    assert hit["chunk"]["text_truncated"] is True
    [near] = client.post("/api/neighbors", json={"text": "sentence"}).json()["data"]
    assert near["chunk"]["text_truncated"] is True


def test_responses_are_cut_at_the_size_limit(make_client) -> None:
    client = make_client(max_response_bytes=20_000)
    documents = [
        {"text": f"shared words document {i}", "metadata": {"pad": "x" * 5000}} for i in range(12)
    ]
    client.post("/api/documents?wait=true", json={"documents": documents})
    body = {"query": "shared words", "k": 100, "group_by": "chunk"}
    response = client.post("/api/search", json=body)
    page = response.json()
    assert len(response.content) < 30_000
    assert 1 <= len(page["hits"]) < 12
    assert page["has_more"] is True
    assert "EMBEDSEARCH_MAX_RESPONSE_BYTES" in page["message"]
    rest = client.post("/api/search", json={**body, "offset": len(page["hits"])}).json()
    assert rest["hits"][0]["rank"] == len(page["hits"]) + 1
    listing = client.get("/api/documents?limit=100")
    assert len(listing.content) < 30_000
    assert listing.json()["total"] == 12
