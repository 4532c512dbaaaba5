"""Replicas' indexes follow the shared database by its change counter, before they answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from app.index.faiss import FaissFiles
from app.index.indexes import Indexes
from app.store.database import Store
from app.store.records import AddResult
from tests.support.documents import DIMENSIONS, chunk_records, unit_vectors


class Replica:
    """One replica's view: its own Store connection and its own index files."""

    def __init__(self, url: str, directory: Path, follow_seconds: float = 0.0) -> None:
        self.store = Store(url, pool_size=2)
        self.indexes = Indexes(self.store, FaissFiles(directory), follow_seconds=follow_seconds)

    def add(self, collection_id: int, texts: list[str], seed: int, **fields: object) -> AddResult:
        chunks, text = chunk_records(texts, 3)
        row = {"title": "t", "source_name": f"{seed}.txt", "source_type": "text/plain"}
        row |= {"size": len(text), "content_hash": f"{seed}-{text}", "text": text, **fields}
        vectors = unit_vectors(np.random.default_rng(seed), len(texts))
        return self.store.add_document(collection_id, row, chunks, vectors)

    def found(self, collection_id: int) -> set[int]:
        """Chunk ids this replica's index answers with (every stored vector, if in step)."""
        ids, vectors = self.store.chunk_vectors(collection_id)
        if not len(ids):
            return set()
        _, hits = self.indexes.search(collection_id, vectors, 1)
        return {int(i) for i in hits[:, 0] if i >= 0}


@pytest.fixture
def replicas(database_url: str, tmp_path: Path) -> Iterator[tuple[Replica, Replica, int]]:
    a, b = Replica(database_url, tmp_path / "a"), Replica(database_url, tmp_path / "b")
    collection = a.store.ensure_collection("shared", "m", DIMENSIONS, "faiss")
    yield a, b, collection.id
    a.store.close()
    b.store.close()


def test_a_replica_sees_another_replicas_writes_at_its_next_search(
    replicas: tuple[Replica, Replica, int],
) -> None:
    a, b, collection_id = replicas
    first = a.add(collection_id, ["one", "two"], 1)
    assert b.found(collection_id) == set(first.chunk_ids)
    second = a.add(collection_id, ["three"], 2)
    replaced = a.add(collection_id, ["two again"], 3, external_id="x")
    a.store.delete_document(first.document_id)
    assert b.indexes.follow(collection_id) == "followed"  # by the changes, no full comparison
    assert b.found(collection_id) == {*second.chunk_ids, *replaced.chunk_ids}
    assert b.indexes.check(collection_id).ok
    b.indexes.save(collection_id)
    assert Indexes(b.store, FaissFiles(b.indexes.backend.directory)).check(collection_id).ok


def test_one_external_id_written_by_two_replicas_is_one_document(
    replicas: tuple[Replica, Replica, int],
) -> None:
    a, b, collection_id = replicas
    a.add(collection_id, ["version a"], 1, external_id="same")
    b.add(collection_id, ["version b"], 2, external_id="same")
    documents, total = a.store.list_documents(collection_id)
    assert total == 1 and a.store.get_document(documents[0].id).text == "version b"


def test_pruned_removals_make_a_stale_index_compare_every_id(
    replicas: tuple[Replica, Replica, int],
) -> None:
    a, b, collection_id = replicas
    gone = a.add(collection_id, ["short-lived"], 1)
    kept = a.add(collection_id, ["kept"], 2)
    assert b.found(collection_id) == {*gone.chunk_ids, *kept.chunk_ids}
    a.store.delete_document(gone.document_id)
    assert a.store.prune_removals(older_than_seconds=-1) == 1
    assert b.indexes.follow(collection_id) == "repaired"
    assert b.found(collection_id) == set(kept.chunk_ids)


def test_follow_seconds_bounds_how_stale_a_replica_answers(
    database_url: str, tmp_path: Path
) -> None:
    a = Replica(database_url, tmp_path / "a")
    b = Replica(database_url, tmp_path / "b", follow_seconds=0.5)
    collection_id = a.store.ensure_collection("shared", "m", DIMENSIONS, "faiss").id
    first = a.add(collection_id, ["one"], 1)
    assert b.found(collection_id) == set(first.chunk_ids)
    second = a.add(collection_id, ["two"], 2)
    assert b.found(collection_id) == set(first.chunk_ids)  # checked less than 0.5 s ago
    time.sleep(0.5)
    assert b.found(collection_id) == {*first.chunk_ids, *second.chunk_ids}
    a.store.close()
    b.store.close()
