"""Building documents for store and search tests: chunk records for texts, random unit vectors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from app.store.records import AddResult, ChunkRecord

DIMENSIONS = 16  # of the store tests' vectors
AddDoc = Callable[..., AddResult]  # the store tests' add_doc fixture
AddIndexed = Callable[..., int]  # the search tests' add fixture: stored and indexed, returns the id


def chunk_records(
    texts: list[str], token_count: int, section: str | None = None
) -> tuple[list[ChunkRecord], str]:
    """One chunk per text, in a document that joins the texts with newlines; and that text."""
    chunks, start = [], 0
    for seq, text in enumerate(texts):
        chunks.append(ChunkRecord(seq, text, start, start + len(text), token_count, section))
        start += len(text) + 1
    return chunks, "\n".join(texts)


def unit_vectors(rng: np.random.Generator, n: int, dimensions: int = DIMENSIONS) -> np.ndarray:
    """n random L2-normalised float32 vectors."""
    vectors = rng.normal(size=(n, dimensions)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def long_text(words: int) -> str:
    """About ``words`` words of sentences, with a paragraph break every 40 sentences."""
    sentences = [
        f"Sentence {i} talks about topic {i % 97} and item {i * 7 % 1013}."
        for i in range(words // 10)
    ]
    return "\n\n".join(" ".join(sentences[i : i + 40]) for i in range(0, len(sentences), 40))
