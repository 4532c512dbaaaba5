"""What the client-library tests embed, and how their vectors are checked."""

from __future__ import annotations

import numpy as np

MODEL = "all-MiniLM-L6-v2"
TEXTS = [
    "The cat sat on the mat.",
    "Glaciers carve valleys over thousands of years; rivers finish the work.",
    "naïve café in Zürich, 東京 and São Paulo",
]


def assert_close(vectors: list[list[float]], reference: np.ndarray) -> None:
    """Each vector is within cosine 0.99 of the reference vector for the same text."""
    got = np.array(vectors, dtype=np.float64)
    assert got.shape == reference.shape
    cosines = (got * reference).sum(axis=1) / np.linalg.norm(got, axis=1)
    assert (cosines >= 0.99).all(), cosines
