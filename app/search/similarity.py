"""Cosine similarity: between texts (/api/similarity, the playground), and of search hits."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from app.errors import BadRequest
from app.ingest.embedder import Embedder
from app.store.database import Store

MAX_SIMILARITY_TEXTS = 256  # a full matrix of n texts is n² numbers


def similarity_matrix(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """The texts' pairwise cosine similarities; BadRequest for no, too many or empty texts."""
    if not 1 <= len(texts) <= MAX_SIMILARITY_TEXTS:
        raise BadRequest(
            f"'texts' must hold 1 to {MAX_SIMILARITY_TEXTS} texts, got {len(texts)}.",
            param="texts",
        )
    for i, text in enumerate(texts):
        if not text or not text.strip():
            raise BadRequest(f"Text {i} is empty.", param="texts")
    vectors = embedder.embed(texts)
    return np.clip(vectors @ vectors.T, -1.0, 1.0)


def chunk_cosines(
    store: Store,
    collection_id: int,
    vector: np.ndarray,
    chunk_ids: Iterable[int],
    known: dict[int, float],
) -> dict[int, float]:
    """Each chunk's cosine to ``vector`` (unit length): ``known`` ones (the semantic ranking's
    inner products) as they are, the rest (found by keyword) computed from stored vectors."""
    chunk_ids = set(chunk_ids)
    cosines = {i: known[i] for i in chunk_ids if i in known}
    if missing := chunk_ids - cosines.keys():
        ids, vectors = store.chunk_vectors(collection_id, missing)
        cosines.update(zip(ids.tolist(), (vectors @ vector).tolist(), strict=True))
    return cosines
