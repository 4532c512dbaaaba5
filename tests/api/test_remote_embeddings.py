"""Ingestion pointed at a remote OpenAI-compatible service: a second instance of this app."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.support.api import API_KEY

pytestmark = pytest.mark.model


def test_ingest_through_a_second_instance(live_server, make_client) -> None:
    url, _ = live_server
    client = make_client(embeddings_url=f"{url}/v1", embeddings_key=API_KEY)
    body = {"collection": "remote", "documents": [{"text": "Whales are large marine mammals."}]}
    job = client.post("/api/documents?wait=true", json=body).json()
    assert job["state"] == "done", job
    collection = client.app.state.store.get_collection("remote")
    assert (collection.model, collection.dimensions, collection.backend) == (
        "all-MiniLM-L6-v2",
        384,
        "remote",
    )
    ids, stored = client.app.state.store.chunk_vectors(collection.id)
    remote = httpx.post(
        f"{url}/v1/embeddings",
        json={"model": "all-MiniLM-L6-v2", "input": "Whales are large marine mammals."},
        headers={"Authorization": f"Bearer {API_KEY}"},
    ).json()["data"][0]["embedding"]
    assert float(stored[0] @ np.array(remote, dtype=np.float32)) > 0.9999


def test_unreachable_remote_fails_the_documents_with_its_reason(make_client) -> None:
    client = make_client(embeddings_url="http://127.0.0.1:9/v1")
    job = client.post("/api/documents?wait=true", json={"text": "x y z"}).json()
    # The service failing fails the documents it was asked for, each with the reason; the job
    # itself ran to its end.
    (file,) = job["result"]["files"]
    assert file["status"] == "failed" and "unreachable" in file["error"]
    assert client.get("/api/documents").json()["total"] == 0
