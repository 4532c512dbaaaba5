"""A deterministic fake encoder: the real tokenizer, vectors from a seeded bag of tokens."""

from __future__ import annotations

import threading
from functools import cache

import numpy as np
from transformers import AutoTokenizer

from app.embeddings.models import ModelSpec, bundled_minilm


@cache
def tokenizer():  # noqa: ANN201 - a transformers tokenizer
    """The bundled model's own tokenizer (loads in well under a second)."""
    return AutoTokenizer.from_pretrained(bundled_minilm().path)


class FakeEncoder:
    """Texts sharing tokens get similar vectors; fast and exactly repeatable."""

    dimensions = 32
    max_tokens = 254
    concurrency = 1
    backend = requested_backend = "torch"
    fallback: str | None = None

    def __init__(self, spec: ModelSpec | None = None, delay: threading.Event | None = None) -> None:
        self.tokenizer = tokenizer()
        self.vocab_size = self.tokenizer.vocab_size
        self.table = np.random.default_rng(0).standard_normal((self.vocab_size, self.dimensions))
        self.batches: list[int] = []
        self.gate = delay  # when given, encode() waits for it: lets tests fill the queue
        self.entered = threading.Event()

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]

    def encode(self, batch: list[list[int]]) -> np.ndarray:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append(len(batch))
        vectors = np.stack([self.table[ids].sum(axis=0) for ids in batch]).astype(np.float32)
        # An input with no tokens (whitespace, zero-width characters) sums to zero: keep it zero
        # rather than divide by zero.
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class FakeEmbedder:
    """The fake encoder behind the Embedder interface search uses."""

    model = "fake-model"
    backend = "torch"

    def __init__(self) -> None:
        self.encoder = FakeEncoder()

    def embed(self, texts: list[str]) -> np.ndarray:
        """One normalised row per text."""
        return self.encoder.encode(self.encoder.tokenize(texts))
