"""FaissIndex past its exact-search threshold: IVF recall, removal, persistence and switching."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from app.index.faiss import FaissIndex, nlist_for, sidecar_path

DIMENSIONS = 32


def clustered(rng: np.random.Generator, n: int, centres: np.ndarray) -> np.ndarray:
    """Unit vectors around random centres (a gaussian mixture), as real embeddings cluster."""
    points = centres[rng.integers(len(centres), size=n)]
    points = points + rng.normal(scale=0.12, size=points.shape)
    points = points.astype(np.float32)
    faiss.normalize_L2(points)
    return points


@pytest.fixture
def data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centres = rng.normal(size=(200, DIMENSIONS))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    ids = rng.choice(10**9, size=20_000, replace=False).astype(np.int64)
    return ids, clustered(rng, 20_000, centres), clustered(rng, 200, centres)


def brute_force(ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return ids[np.argsort(-(queries @ vectors.T), axis=1)[:, :k]]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def test_ivf_recall_against_brute_force(data) -> None:
    ids, vectors, queries = data
    index = FaissIndex(DIMENSIONS, exact_max=5_000)
    index.add(ids, vectors)
    assert index.kind == "ivf"
    assert len(index) == len(ids)
    assert set(index.ids().tolist()) == set(ids.tolist())
    scores, found = index.search(queries, 10)
    assert recall(found, brute_force(ids, vectors, queries, 10)) >= 0.95
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first


def test_ivf_remove_and_replace(data) -> None:
    ids, vectors, queries = data
    index = FaissIndex(DIMENSIONS, exact_max=5_000)
    index.add(ids, vectors)
    gone = ids[:2_000]
    assert index.remove(np.concatenate([gone, [-5]])) == 2_000
    assert index.remove(gone) == 0
    assert len(index) == 18_000 and index.kind == "ivf"
    assert not set(gone.tolist()) & set(index.search(queries, 10)[1].ravel().tolist())
    # Adding under an id that is present replaces its vector, never duplicates it.
    index.add(ids[5_000:5_001], queries[:1])
    assert len(index) == 18_000
    assert index.search(queries[:1], 1)[1].tolist() == [[ids[5_000]]]


def test_ivf_save_load_round_trip(data, tmp_path: Path) -> None:
    ids, vectors, queries = data
    index = FaissIndex(DIMENSIONS, version=9, exact_max=5_000)
    index.add(ids, vectors)
    path = tmp_path / "1.faiss"
    index.save(path)
    loaded = FaissIndex.load(path, exact_max=5_000)
    assert loaded.kind == "ivf" and loaded.version == 9 and len(loaded) == len(ids)
    assert json.loads(sidecar_path(path).read_text()) == {
        "version": 9,
        "count": len(ids),
        "dimensions": DIMENSIONS,
    }
    np.testing.assert_array_equal(loaded.search(queries, 10)[1], index.search(queries, 10)[1])
    np.testing.assert_array_equal(np.sort(loaded.ids()), np.sort(ids))


def test_threshold_switches_to_ivf_and_back_without_losing_vectors(data) -> None:
    ids, vectors, queries = data
    index = FaissIndex(DIMENSIONS, exact_max=4_000)
    index.add(ids[:4_000], vectors[:4_000])
    assert index.kind == "flat"  # at the threshold: still exact
    index.add(ids[4_000:4_001], vectors[4_000:4_001])
    assert index.kind == "ivf"
    assert index._index.nlist == nlist_for(4_001)
    index.remove(ids[:2_002])  # 1999 left, below half the threshold: exact again
    assert index.kind == "flat"
    kept_ids, kept = ids[2_002:4_001], vectors[2_002:4_001]
    assert len(index) == len(kept_ids)
    np.testing.assert_array_equal(
        index.search(queries, 10)[1], brute_force(kept_ids, kept, queries, 10)
    )


def test_ivf_retrains_when_it_outgrows_its_lists(data) -> None:
    ids, vectors, _ = data
    index = FaissIndex(DIMENSIONS, exact_max=1_000)
    index.add(ids[:1_001], vectors[:1_001])
    assert index.trained_on == 1_001
    index.add(ids[1_001:4_000], vectors[1_001:4_000])
    assert index.trained_on == 1_001  # 3.99x: same lists
    index.add(ids[4_000:5_000], vectors[4_000:5_000])
    assert index.trained_on == 5_000 and len(index) == 5_000
    assert set(index.ids().tolist()) == set(ids[:5_000].tolist())


def test_nlist_grows_with_the_square_root() -> None:
    assert nlist_for(10_000) == 256
    assert nlist_for(1_000_000) == 1024
    assert nlist_for(10**8) == 4096
