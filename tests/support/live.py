"""Helpers for tests against a real server: upload and wait, check what it serves, check its
data directory is consistent after a crash."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import httpx

from app.store.database import Store
from app.store.sqlite import fts_table

WORDS = ["river", "glacier", "violin", "lantern", "falcon", "copper", "canyon", "ember"]


def notes(rng: random.Random, tag: str, n: int) -> list[str]:
    """n short, distinct texts: each is its own best semantic match."""
    return [f"Note {tag}-{i}: {' '.join(rng.choices(WORDS, k=8))}." for i in range(n)]


def upload(url: str, records: list[dict], wait: bool = True, key: str | None = None) -> dict:
    """Upload JSON document records; returns the job (finished when ``wait``)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.post(
        f"{url}/api/documents?wait={str(wait).lower()}",
        json={"documents": records},
        headers=headers,
        timeout=120,
    )
    assert response.status_code == (200 if wait else 202), response.text
    return response.json()


def text_records(values: list[str]) -> list[dict]:
    """JSON document records holding only these texts."""
    return [{"text": text} for text in values]


def ingest(url: str, values: list[str]) -> dict[int, str]:
    """Upload texts and wait; returns the acknowledged documents as {id: text}."""
    job = upload(url, text_records(values))
    assert job["state"] == "done" and len(job["documents"]) == len(values), job
    return dict(zip(job["documents"], values, strict=True))


def semantic_hits(http: httpx.Client, text: str, k: int = 10) -> list[int]:
    """Document ids of a semantic search (the FAISS index alone; keyword search would hide a
    missing vector), best first."""
    response = http.post("/api/search", json={"query": text, "mode": "semantic", "k": k})
    assert response.status_code == 200, response.text
    return [hit["document"]["id"] for hit in response.json()["hits"]]


def assert_searchable(url: str, present: dict[int, str], gone: dict[int, str]) -> None:
    """Each present document is whole and is its own text's best match; gone ones are gone."""
    with httpx.Client(base_url=url, timeout=60) as http:
        for doc_id, text in present.items():
            response = http.get(f"/api/documents/{doc_id}")
            assert response.status_code == 200, (doc_id, response.text)
            document = response.json()
            assert document["text"] == text
            assert len(document["chunks"]) == document["chunk_count"] > 0
            assert semantic_hits(http, text)[0] == doc_id, (doc_id, text)
        for doc_id, text in gone.items():
            assert http.get(f"/api/documents/{doc_id}").status_code == 404, doc_id
            assert doc_id not in semantic_hits(http, text), doc_id


def assert_consistent(data_dir: Path) -> None:
    """``verify`` finds every index matching SQLite, and SQLite is consistent in itself."""
    env = {**os.environ, "EMBEDSEARCH_DATA_DIR": str(data_dir)}
    verify = subprocess.run(
        [sys.executable, "-m", "app", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0 and "default: ok" in verify.stdout, verify.stdout + verify.stderr
    assert_sqlite_consistent(data_dir / "embedsearch.db")


def assert_sqlite_consistent(path: Path) -> None:
    """No orphan chunks, no document without all its chunks, a sound file and full-text index."""
    store = Store(path)
    try:
        orphans = store.db.execute(
            "SELECT count(*) FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)"
        ).fetchone()[0]
        miscounted = store.db.execute(
            "SELECT count(*) FROM documents d WHERE chunk_count < 1 OR chunk_count != "
            "(SELECT count(*) FROM chunks c WHERE c.document_id = d.id)"
        ).fetchone()[0]
        assert (orphans, miscounted) == (0, 0)
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # Raises if a full-text index disagrees with the chunks it indexes.
        for collection in store.list_collections():
            fts = fts_table(collection.id)
            store.db.execute(f"INSERT INTO {fts} ({fts}, rank) VALUES ('integrity-check', 1)")
    finally:
        store.close()
