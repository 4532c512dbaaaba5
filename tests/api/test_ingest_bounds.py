"""Large documents go in through bounded embedding calls; accepted uploads wait for room."""

from __future__ import annotations

import numpy as np

from app.errors import RateLimited
from tests.support.documents import long_text


def test_a_document_larger_than_the_embeddings_cap_ingests(make_client) -> None:
    client = make_client(max_inputs_per_request=16)
    text = long_text(4000).encode()
    files = [("files", ("big.txt", text)), ("files", ("small.txt", b"a small file"))]
    job = client.post("/api/documents?wait=true", files=files).json()
    assert job["state"] == "done", job
    statuses = {f["name"]: f["status"] for f in job["result"]["files"]}
    assert statuses == {"big.txt": "added", "small.txt": "added"}
    big = client.get(f"/api/documents/{job['result']['files'][0]['documents'][0]}").json()
    assert big["chunk_count"] > 16
    assert job["progress"]["done"] == job["progress"]["total"] == big["chunk_count"] + 1


class Busy:
    """An embedder whose queue is full for the first few calls."""

    def __init__(self, inner, refusals: int) -> None:
        self.inner, self.refusals, self.calls = inner, refusals, 0
        self.model, self.backend = inner.model, inner.backend

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if self.calls <= self.refusals:
            raise RateLimited("Too many inputs are waiting for the model; retry shortly.")
        return self.inner.embed(texts)


def test_ingestion_waits_for_room_in_the_queue(client) -> None:
    ingestor = client.app.state.ingestor
    ingestor.embedder = Busy(ingestor.embedder, refusals=4)
    job = client.post("/api/documents?wait=true", json={"text": "accepted, so it goes in"}).json()
    assert job["state"] == "done", job
    assert ingestor.embedder.calls == 5
