"""Fixtures for the search tests: an in-memory store and indexes, the fake encoder, a searcher."""

from __future__ import annotations

import numpy as np
import pytest

from app.index.faiss import FaissFiles
from app.index.indexes import Indexes
from app.search import Searcher
from app.search.query import QueryLimits
from app.settings import Settings
from app.store.database import Store
from app.store.records import Collection
from tests.support.documents import AddIndexed, chunk_records
from tests.support.fakes import FakeEmbedder


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def indexes(store: Store) -> Indexes:
    return Indexes(store, FaissFiles(None))


@pytest.fixture
def searcher(store: Store, indexes: Indexes, embedder: FakeEmbedder) -> Searcher:
    return Searcher(store, indexes, embedder, QueryLimits.of(Settings(_env_file=None)))


@pytest.fixture
def collection(store: Store, embedder: FakeEmbedder) -> Collection:
    return store.ensure_collection("default", embedder.model, 32, embedder.backend)


@pytest.fixture
def add(
    store: Store, indexes: Indexes, embedder: FakeEmbedder, collection: Collection
) -> AddIndexed:
    """Adds a document whose chunks are ``texts``; returns its id."""

    def add_document(
        title: str,
        texts: list[str],
        *,
        section: str | None = None,
        source_type: str = "text/plain",
        metadata: dict | None = None,
        collection_id: int | None = None,
    ) -> int:
        chunks, body = chunk_records(texts, 5, section)
        # The embedded text carries the section path, as ingestion's chunks do.
        vectors = embedder.embed([f"{section}\n{t}" if section else t for t in texts])
        fields = {
            "title": title,
            "source_name": f"{title}.txt",
            "source_type": source_type,
            "size": len(body),
            "content_hash": f"hash-{title}-{body}",
            "text": body,
            "metadata": metadata or {},
        }
        target = collection_id or collection.id
        result = store.add_document(target, fields, chunks, vectors)
        indexes.add(target, np.array(result.chunk_ids), vectors)
        return result.document_id

    return add_document
