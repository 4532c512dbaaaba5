"""2D maps of a collection's documents: PCA of document vectors, cached per collection version."""

from __future__ import annotations

import numpy as np

from app.errors import BadRequest
from app.search.clusters import document_vectors
from app.store.database import Store
from app.store.records import Collection, StoredMap

METHOD = "pca"
POWER_ITERATIONS = 20


def top_components(scatter: np.ndarray) -> np.ndarray:
    """The two leading eigenvectors (rows) of a d x d scatter matrix, by seeded subspace iteration.

    LAPACK's eigh and svd run multithreaded in OpenBLAS and spin on busy cores: an SVD of
    5,000 x 384 took 6.5 s and eigh of 384 x 384 up to 2.5 s on our two cores, against
    0.05 s for this (a block of 10 power-iterated 20 times, then Rayleigh-Ritz).
    """
    block = min(10, len(scatter))
    basis = np.random.default_rng(0).normal(size=(len(scatter), block))
    for _ in range(POWER_ITERATIONS):
        basis, _ = np.linalg.qr(scatter @ basis)
    _, vectors = np.linalg.eigh(basis.T @ scatter @ basis)
    return (basis @ vectors[:, ::-1][:, :2]).T


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """The rows projected on their first two principal components, scaled into [-1, 1].

    Each component's sign is fixed (its largest loading positive) so that recomputing a map
    of the same documents does not mirror it.
    """
    centred = vectors.astype(np.float64) - vectors.mean(axis=0)
    top = top_components(centred.T @ centred)
    # Fewer than two dimensions: pad with a zero axis.
    axes = np.zeros((2, vectors.shape[1]))
    axes[: len(top)] = top
    signs = np.sign(axes[np.arange(2), np.abs(axes).argmax(axis=1)])
    coordinates = centred @ (axes * np.where(signs == 0, 1, signs)[:, None]).T
    scale = np.abs(coordinates).max()
    return (coordinates / scale if scale > 0 else coordinates).astype(np.float32)


def document_map(store: Store, collection: Collection) -> StoredMap:
    """The collection's map: from the cache if made at this version, else computed and cached."""
    cached = store.get_map(collection.id)
    if cached is not None and cached.version == collection.version:
        return cached
    chunk_documents, chunk_vectors = store.document_chunk_vectors(collection.id)
    if not len(chunk_documents):
        raise BadRequest(
            f"Collection '{collection.name}' has no documents to map. Add documents "
            "(POST /api/documents) and try again.",
            param="collection",
        )
    document_ids, vectors = document_vectors(chunk_documents, chunk_vectors)
    # Stamped with the version read before the vectors: if a write landed in between, the
    # map looks stale and is recomputed next time, rather than passing for current.
    stored = StoredMap(collection.version, METHOD, document_ids, pca_2d(vectors))
    store.save_map(collection.id, stored)
    return stored
