"""Fixtures for the store tests: a Store on each database (in-memory SQLite, and a throwaway
PostgreSQL database when one answers) and seeded synthetic vectors."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from app.store.database import Store
from app.store.records import AddResult, Collection
from tests.support.documents import DIMENSIONS, AddDoc, chunk_records, unit_vectors
from tests.support.postgres import empty_postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A store on each database the app runs on, empty."""
    if request.param == "sqlite":
        store = Store(None)
    else:
        store = Store(request.getfixturevalue("postgres_url"), pool_size=4)
        empty_postgres(store)
    yield store
    store.close()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def collection(store: Store) -> Collection:
    return store.ensure_collection("notes", "test-model", DIMENSIONS, "faiss")


@pytest.fixture
def add_doc(store: Store, collection: Collection, rng: np.random.Generator) -> AddDoc:
    """Adds a document whose chunks are ``texts``, with random vectors."""

    def add(
        texts: list[str],
        *,
        collection_id: int | None = None,
        replace_id: int | None = None,
        **fields: object,
    ) -> AddResult:
        chunks, text = chunk_records(texts, 3)
        row = {
            "title": "A title",
            "source_name": "notes.txt",
            "source_type": "text/plain",
            "size": len(text),
            "content_hash": f"hash-{text}",
            "text": text,
            **fields,
        }
        return store.add_document(
            collection_id or collection.id,
            row,
            chunks,
            unit_vectors(rng, len(texts)),
            replace_id=replace_id,
        )

    return add
