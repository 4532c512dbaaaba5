"""Fixtures for the store tests: an in-memory Store and seeded synthetic vectors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from app.store.database import AddResult, ChunkRecord, Collection, Store

DIMENSIONS = 16


def unit_vectors(rng: np.random.Generator, n: int, dimensions: int = DIMENSIONS) -> np.ndarray:
    """n random L2-normalised float32 vectors."""
    vectors = rng.normal(size=(n, dimensions)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def collection(store: Store) -> Collection:
    return store.ensure_collection("notes", "test-model", DIMENSIONS, "faiss")


AddDoc = Callable[..., AddResult]


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
        text = "\n".join(texts)
        chunks, start = [], 0
        for seq, chunk_text in enumerate(texts):
            chunks.append(ChunkRecord(seq, chunk_text, start, start + len(chunk_text), 3))
            start += len(chunk_text) + 1
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
