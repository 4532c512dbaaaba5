"""The 2D document map: PCA and t-SNE properties, its cache and its background computation."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.manifold import trustworthiness

from app.errors import BadRequest
from app.search.projection import MIN_TSNE, document_map, pca_2d, tsne_2d
from app.store.database import Store
from app.store.records import ChunkRecord

DIMENSIONS = 12


def test_pca_keeps_the_two_directions_of_largest_spread() -> None:
    rng = np.random.default_rng(0)
    # Spread 10 along axis 3, 5 along axis 7, tiny elsewhere.
    points = rng.normal(scale=0.01, size=(200, DIMENSIONS))
    points[:, 3] += rng.normal(scale=10, size=200)
    points[:, 7] += rng.normal(scale=5, size=200)
    xy = pca_2d(points)
    assert xy.shape == (200, 2) and xy.dtype == np.float32
    assert np.abs(xy).max() == pytest.approx(1.0)
    assert abs(np.corrcoef(xy[:, 0], points[:, 3])[0, 1]) > 0.99
    assert abs(np.corrcoef(xy[:, 1], points[:, 7])[0, 1]) > 0.99


def test_pca_is_stable_and_handles_tiny_inputs() -> None:
    points = np.random.default_rng(1).normal(size=(50, DIMENSIONS))
    assert np.array_equal(pca_2d(points), pca_2d(points.copy()))
    assert pca_2d(points[:1]).tolist() == [[0.0, 0.0]]
    two = pca_2d(points[:2])
    assert np.allclose(two[:, 1], 0) and np.allclose(np.abs(two[:, 0]), 1)


def add(store: Store, collection_id: int, seed: int) -> int:
    """Store a one-chunk document with a random vector."""
    vector = np.random.default_rng(seed).normal(size=(1, DIMENSIONS)).astype(np.float32)
    fields = {
        "title": f"doc {seed}",
        "source_name": "t.txt",
        "source_type": "text/plain",
        "size": 1,
        "content_hash": str(seed),
        "text": "x",
    }
    chunks = [ChunkRecord(0, "x", 0, 1, 1)]
    return store.add_document(collection_id, fields, chunks, vector).document_id


def test_map_is_cached_until_the_collection_changes(store: Store) -> None:
    collection = store.ensure_collection("maps", "m", DIMENSIONS, "faiss")
    for seed in range(5):
        add(store, collection.id, seed)
    collection = store.get_collection("maps")
    first = document_map(store, collection, 100).map
    assert first.version == collection.version and len(first.document_ids) == 5
    # A planted cache entry at the current version is served as is.
    planted = first.__class__(first.version, "pca", first.document_ids, first.coordinates * 0)
    store.save_map(collection.id, planted)
    assert not document_map(store, collection, 100).map.coordinates.any()
    new_id = add(store, collection.id, 99)
    changed = store.get_collection("maps")
    fresh = document_map(store, changed, 100).map
    assert fresh.version == changed.version and new_id in fresh.document_ids.tolist()
    assert fresh.coordinates.any()
    assert store.get_map(collection.id).version == changed.version


def test_map_of_an_empty_collection_says_to_add_documents(store: Store) -> None:
    collection = store.ensure_collection("empty", "m", DIMENSIONS, "faiss")
    with pytest.raises(BadRequest, match="no documents to map.*POST /api/documents"):
        document_map(store, collection, 100)


def test_tsne_keeps_neighbours_that_pca_loses() -> None:
    # Ten tight groups in 12 dimensions: PCA's two axes overlap them, t-SNE keeps them apart.
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(10, DIMENSIONS))
    points = np.repeat(centres, 30, axis=0) + rng.normal(scale=0.05, size=(300, DIMENSIONS))
    xy = tsne_2d(points)
    assert xy.shape == (300, 2) and np.abs(xy).max() == pytest.approx(1.0)
    assert trustworthiness(points, xy, n_neighbors=10) > trustworthiness(
        points, pca_2d(points), n_neighbors=10
    )
    assert np.array_equal(xy, tsne_2d(points.copy()))  # seeded: the same map each time
    assert tsne_2d(points[:5]).tolist() == pca_2d(points[:5]).tolist()  # too few for t-SNE


def test_large_collection_gets_pca_while_tsne_runs_in_background(store: Store) -> None:
    collection = store.ensure_collection("big", "m", DIMENSIONS, "faiss")
    for seed in range(MIN_TSNE + 5):
        add(store, collection.id, seed)
    collection = store.get_collection("big")
    first = document_map(store, collection, background_documents=MIN_TSNE)
    assert first.pending and first.map.method == "pca"
    deadline = time.monotonic() + 60
    while (found := document_map(store, collection, MIN_TSNE)).pending:
        assert time.monotonic() < deadline, "the background map never arrived"
        time.sleep(0.05)
    assert found.map.method == "tsne" and found.map.version == collection.version
    assert sorted(found.map.document_ids.tolist()) == sorted(first.map.document_ids.tolist())
