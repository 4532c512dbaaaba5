"""Document clustering: Ward linkage refined by spherical k-means over document vectors, k chosen
by silhouette when not given, and labels from each cluster's distinctive terms (labels.py).

A document's vector is the normalised mean of its chunk vectors, so long documents and short
ones weigh the same. ``cluster_collection`` reads a collection from the store, clusters it and
saves the result as the collection's latest; the rest is computation on arrays and strings.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
from sklearn.cluster import ward_tree
from sklearn.neighbors import kneighbors_graph

from app.errors import BadRequest
from app.search.labels import LABEL_CHARS, LABEL_TERMS, distinctive_terms
from app.settings import DEFAULTS
from app.store.database import Store
from app.store.records import Collection, StoredClustering

# k-means restarts: the best fit of three seeded runs is steadier than one run (BANKING77
# V-measure 0.788-0.797 against 0.780-0.797), and a run costs ~0.2 s at 3,080 x 77.
RESTARTS = 3
ITERATIONS = 25
# Automatic k: silhouette is computed on at most this many documents (the cost is quadratic).
SILHOUETTE_SAMPLE = 2000
AUTO_CANDIDATES = 8
MAX_AUTO_K = 50
NEAREST = 5
# Ward linkage over each document's nearest neighbours (then k-means from its clusters): on
# BANKING77 (k=77) V-measure 0.806 against k-means++' 0.787-0.797. Its graph costs O(n^2) to
# build, so larger collections use k-means++ alone (EMBEDSEARCH_WARD_MAX_DOCUMENTS).
WARD_NEIGHBORS = 10


@dataclass(frozen=True)
class Cluster:
    """One cluster: its id, size, label terms and the documents nearest its centre."""

    id: int
    size: int
    label: str
    terms: list[str]
    nearest: list[int]


@dataclass(frozen=True)
class Clustering:
    """A clustering of documents; ``assignments[i]`` is the cluster of ``document_ids[i]``."""

    k: int
    auto: bool
    document_ids: np.ndarray
    assignments: np.ndarray
    clusters: list[Cluster]
    silhouettes: dict[int, float]


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def document_vectors(
    document_ids: np.ndarray, chunk_vectors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Unique document ids (ascending) and the normalised mean of each one's chunk vectors."""
    order = np.argsort(document_ids, kind="stable")
    ids, starts = np.unique(document_ids[order], return_index=True)
    if not len(ids):
        return ids, np.zeros((0, chunk_vectors.shape[1]), dtype=np.float32)
    # Summing is enough: normalising removes the 1/count of the mean.
    return ids, normalise(np.add.reduceat(chunk_vectors[order], starts, axis=0))


def check_clusters(k: int | None, documents: int) -> None:
    """BadRequest unless ``k`` (None meaning automatic) can cluster this many documents."""
    if documents < 2:
        raise BadRequest(
            f"Clustering needs at least 2 documents and the collection has {documents}. "
            "Add documents (POST /api/documents) and try again.",
            param="collection",
        )
    if k is not None and not 2 <= k <= documents:
        raise BadRequest(
            f"'k' must be between 2 and the number of documents ({documents}); got {k}. "
            'Pick a smaller k, or send "auto" to let the server choose.',
            param="k",
        )


def check_most_k(k: int | None, most: int) -> None:
    """BadRequest if ``k`` asks for more clusters than the server allows (the cost grows with k)."""
    if k is not None and k > most:
        raise BadRequest(
            f"'k' may be at most {most} (EMBEDSEARCH_MAX_CLUSTERS); got {k}.", param="k"
        )


@contextmanager
def _one_openmp_thread() -> Iterator[None]:
    """Run FAISS single-threaded in this thread (the setting is per thread), then restore it.

    The server shares its cores with the model; FAISS' OpenMP threads spin-wait when a core
    is busy, and k-means on 3,080 vectors measured 5x slower on two threads than on one.
    """
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def kmeans_plus_plus(vectors: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeds (unit rows): each pick is the best of a few distance-weighted draws."""
    trials = 2 + int(math.log(k))
    first = int(rng.integers(len(vectors)))
    chosen = [first]
    # Cosine distance is half the squared L2 distance between unit vectors: k-means++ weights.
    distance = np.maximum(1.0 - vectors @ vectors[first], 0.0)
    for _ in range(1, k):
        total = distance.sum()
        if total <= 0:  # every point sits on a seed already: any point will do
            candidates = rng.integers(len(vectors), size=trials)
        else:
            candidates = rng.choice(len(vectors), trials, p=distance / total)
        options = np.minimum(distance, np.maximum(1.0 - vectors[candidates] @ vectors.T, 0.0))
        best = int(options.sum(axis=1).argmin())
        chosen.append(int(candidates[best]))
        distance = options[best]
    return vectors[chosen].copy()


def kmeans(
    vectors: np.ndarray,
    k: int,
    seed: int = 0,
    restarts: int = RESTARTS,
    start: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means, best of a few seeded restarts: (cluster per row, unit centroids).

    Seeds come from greedy k-means++ (FAISS alone seeds at random): on BANKING77 this lifted
    V-measure from 0.770-0.800 to 0.788-0.797 over seeds. Given ``start`` centroids, one run
    from them.
    """
    rng = np.random.default_rng(seed)
    best: faiss.Kmeans | None = None
    with _one_openmp_thread():
        for _ in range(1 if start is not None else restarts):
            km = faiss.Kmeans(
                vectors.shape[1],
                k,
                niter=ITERATIONS,
                spherical=True,
                seed=int(rng.integers(2**31 - 1)),  # FAISS takes a C int
                # Small collections are fine to cluster: silence FAISS' "too few points"
                # warning, and never subsample, so every document shapes the centroids.
                min_points_per_centroid=1,
                max_points_per_centroid=1 << 30,
            )
            seeds = kmeans_plus_plus(vectors, k, rng) if start is None else start
            km.train(vectors, init_centroids=seeds)
            # Spherical k-means uses inner products: a higher objective is a tighter fit.
            if best is None or km.obj[-1] > best.obj[-1]:
                best = km
        assert best is not None  # restarts >= 1
        _, labels = best.index.search(vectors, 1)
    return labels[:, 0].astype(np.int64), best.centroids


def silhouette(vectors: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette with cosine distance (rows must be unit length); singletons score 0."""
    k = int(labels.max()) + 1
    distances = 1.0 - vectors @ vectors.T
    members = np.eye(k, dtype=np.float32)[labels]
    counts = members.sum(axis=0)
    # Sum of distances from each row to every cluster, then mean (own cluster excludes self).
    sums = distances @ members
    own = counts[labels] - 1
    rows = np.arange(len(labels))
    a = sums[rows, labels] / np.maximum(own, 1)
    others = sums / np.where(counts > 0, counts, np.inf)
    others[rows, labels] = np.inf
    b = others.min(axis=1)
    scores = np.where(own > 0, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(scores.mean())


def auto_k_candidates(documents: int) -> list[int]:
    """Candidate cluster counts: a geometric range from 2 up to about 2·sqrt(n/2)."""
    top = min(documents - 1, MAX_AUTO_K, max(3, round(2 * math.sqrt(documents / 2))))
    grid = np.geomspace(2, top, AUTO_CANDIDATES)
    return sorted({int(round(value)) for value in grid})


def choose_k(
    vectors: np.ndarray, seed: int = 0, children: np.ndarray | None = None
) -> tuple[int, dict[int, float]]:
    """The candidate k with the best silhouette on a sample, and every candidate's score.

    With a Ward tree (``children``) each candidate is a cut of it; else k-means on the sample.
    """
    if len(vectors) < 4:  # silhouette needs 2 <= k <= n - 1 with room to compare
        return 2, {}
    rng = np.random.default_rng(seed)
    rows = np.arange(len(vectors))
    if len(vectors) > SILHOUETTE_SAMPLE:
        rows = np.sort(rng.choice(len(vectors), SILHOUETTE_SAMPLE, replace=False))
    sample = vectors[rows]

    def partition(k: int) -> np.ndarray:
        if children is not None:
            return np.unique(cut(children, len(vectors), k)[rows], return_inverse=True)[1]
        # One run per candidate: the scores only rank candidates, and 8 runs of 3 cost seconds.
        return kmeans(sample, k, seed, restarts=1)[0]

    scores = {k: silhouette(sample, partition(k)) for k in auto_k_candidates(len(vectors))}
    return max(scores, key=scores.__getitem__), scores


def ward(vectors: np.ndarray) -> np.ndarray:
    """Ward's merge tree (sklearn's ``children_``) over a nearest-neighbour graph of the rows."""
    graph = kneighbors_graph(vectors, min(WARD_NEIGHBORS, len(vectors) - 1))
    with warnings.catch_warnings():
        # A graph in several pieces is joined up by sklearn, which warns that it does so.
        warnings.filterwarnings("ignore", message="the number of connected components")
        children, *_ = ward_tree(vectors, connectivity=graph)
    return children


def cut(children: np.ndarray, n: int, k: int) -> np.ndarray:
    """The k clusters (numbered from 0) left after a merge tree's first n - k merges."""
    root = np.arange(n + len(children))
    # Latest merge first: a merged node's root is known before its children take it.
    for step in range(n - k - 1, -1, -1):
        root[children[step]] = root[n + step]
    return np.unique(root[:n], return_inverse=True)[1]


def nearest_to_centres(
    vectors: np.ndarray, labels: np.ndarray, centroids: np.ndarray, limit: int = NEAREST
) -> list[list[int]]:
    """Per cluster, the row numbers of its members most similar to its centre, nearest first."""
    similarity = np.einsum("ij,ij->i", vectors, centroids[labels])
    nearest = []
    for cluster in range(len(centroids)):
        rows = np.flatnonzero(labels == cluster)
        nearest.append(rows[np.argsort(-similarity[rows], kind="stable")[:limit]].tolist())
    return nearest


def cluster_documents(
    document_ids: np.ndarray,
    vectors: np.ndarray,
    texts: Sequence[str],
    k: int | None = None,
    seed: int = 0,
    ward_max: int = DEFAULTS.ward_max_documents,
) -> Clustering:
    """Cluster documents (unit vectors, one per id) into k clusters, or an automatic k if None.

    Clusters are numbered by size, largest first; each gets a label from its top terms.
    """
    check_clusters(k, len(document_ids))
    auto = k is None
    silhouettes: dict[int, float] = {}
    if len(vectors) > ward_max:
        if k is None:
            k, silhouettes = choose_k(vectors, seed)
        labels, centroids = kmeans(vectors, k, seed)
    else:
        children = ward(vectors)
        if k is None:
            k, silhouettes = choose_k(vectors, seed, children)
        # Ward's clusters seed k-means: the tree finds fine structure (BANKING77 at k=77:
        # V-measure 0.806), k-means then evens out coarse cuts (AG News at k=4: Ward alone
        # 0.512, k-means 0.595).
        ward_labels = cut(children, len(vectors), k)
        start = normalise(np.eye(k, dtype=np.float32)[ward_labels].T @ vectors)
        labels, centroids = kmeans(vectors, k, seed, start=start)
    sizes = np.bincount(labels, minlength=k)
    order = np.argsort(-sizes, kind="stable")
    # Renumber so that cluster 0 is the largest.
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    labels, centroids, sizes = rank[labels], centroids[order], sizes[order]
    top_terms = distinctive_terms(texts, labels, k)
    nearest = nearest_to_centres(vectors, labels, centroids)
    clusters = [
        Cluster(
            id=cluster,
            size=int(sizes[cluster]),
            label=" · ".join(top_terms[cluster][:LABEL_TERMS]) or f"cluster {cluster}",
            terms=top_terms[cluster],
            nearest=[int(document_ids[row]) for row in nearest[cluster]],
        )
        for cluster in range(k)
    ]
    return Clustering(k, auto, document_ids, labels, clusters, silhouettes)


def cluster_collection(
    store: Store,
    collection: Collection,
    k: int | None = None,
    seed: int = 0,
    ward_max: int = DEFAULTS.ward_max_documents,
) -> StoredClustering:
    """Cluster the collection's documents, store the result as its latest, and return it."""
    # ``collection.version`` was read before the vectors: a write landing while this runs
    # leaves the result marked stale rather than passing for current.
    chunk_documents, chunk_vectors = store.document_chunk_vectors(collection.id)
    document_ids, vectors = document_vectors(chunk_documents, chunk_vectors)
    documents = store.document_texts(collection.id, LABEL_CHARS)
    texts = [documents.get(int(i), ("", ""))[1] for i in document_ids]
    clustering = cluster_documents(document_ids, vectors, texts, k, seed, ward_max)
    result = {
        "k": clustering.k,
        "auto": clustering.auto,
        "seed": seed,
        "documents": len(document_ids),
        "silhouettes": {str(k): round(score, 4) for k, score in clustering.silhouettes.items()},
        "clusters": [
            {
                "id": cluster.id,
                "size": cluster.size,
                "label": cluster.label,
                "terms": cluster.terms,
                "nearest": [
                    {"id": i, "title": documents.get(i, ("", ""))[0]} for i in cluster.nearest
                ],
            }
            for cluster in clustering.clusters
        ],
    }
    assignments = dict(zip(document_ids.tolist(), clustering.assignments.tolist(), strict=True))
    return store.save_clustering(collection.id, collection.version, result, assignments)


def clustering_body(collection: Collection, stored: StoredClustering) -> dict[str, Any]:
    """The JSON answer for a stored clustering, flagged stale if the collection changed since."""
    return {
        "object": "clustering",
        "collection": collection.name,
        "version": stored.version,
        "collection_version": collection.version,
        # Documents added, replaced or deleted since: the clusters no longer cover them exactly.
        "stale": stored.version != collection.version,
        "created_at": stored.created_at,
        **stored.result,
    }
