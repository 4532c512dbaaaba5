"""Cosine similarity between texts, as the API's /api/similarity and the playground show it."""

from __future__ import annotations

import numpy as np

from app.errors import BadRequest
from app.ingest.embedder import Embedder

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
