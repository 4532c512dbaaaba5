"""Document clustering: spherical k-means over document vectors, k chosen by silhouette when
not given, and readable labels from each cluster's most distinctive terms (c-TF-IDF).

A document's vector is the normalised mean of its chunk vectors, so long documents and short
ones weigh the same. ``cluster_collection`` reads a collection from the store, clusters it and
saves the result as the collection's latest; the rest is computation on arrays and strings.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import faiss
import numpy as np

from app.errors import BadRequest
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
LABEL_TERMS = 3
TOP_TERMS = 5
NEAREST = 5
# Only the start of each document feeds its labels: the terms that name a topic show up early
# (a SciFact abstract's title and first sentences), and long documents must not make
# clustering slow (5,000 characters each cost 2.9 s over 5,000 abstracts, 2,000 cost ~1 s).
LABEL_CHARS = 2000

# A word starts with a letter and may hold digits, apostrophes and inner hyphens.
# Phrase-ending punctuation is matched too, as a token of its own.
_TOKEN = re.compile(r"[^\W\d_](?:[\w'-]*[^\W_])?|[.,;:!?()\[\]{}\"\n]")
_STOP_WORDS = """
    a about above after again against all almost also am an and any are aren't as at be
    because been before being below between both but by can can't cannot could couldn't did
    didn't do does doesn't doing don't down during each either else etc even ever every few for
    from further get gets got had hadn't has hasn't have haven't having he her here hers herself
    him himself his how however i i'd i'll i'm i've if in into is isn't it it's its itself just
    let's like may me might more most much must mustn't my myself need neither no nor not now of
    off often on once one only or other others our ours ourselves out over own per please quite
    rather really said same say says shall shan't she should shouldn't since so some still such
    than that that's the their theirs them themselves then there there's these they they'd
    they'll they're they've this those though through thus to too under until up upon us use
    used using very via was wasn't we we'd we'll we're we've were weren't what what's when
    where which while who whom whose why will with within without won't would wouldn't yet you
    you'd you'll you're you've your yours yourself yourselves
"""
STOP_WORDS = frozenset(_STOP_WORDS.split())


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
    vectors: np.ndarray, k: int, seed: int = 0, restarts: int = RESTARTS
) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means, best of a few seeded restarts: (cluster per row, unit centroids).

    Seeds come from greedy k-means++ (FAISS alone seeds at random): on BANKING77 this lifted
    V-measure from 0.770-0.800 to 0.788-0.797 over seeds.
    """
    rng = np.random.default_rng(seed)
    best: faiss.Kmeans | None = None
    with _one_openmp_thread():
        for _ in range(restarts):
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
            km.train(vectors, init_centroids=kmeans_plus_plus(vectors, k, rng))
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


def choose_k(vectors: np.ndarray, seed: int = 0) -> tuple[int, dict[int, float]]:
    """The candidate k with the best silhouette on a sample, and every candidate's score."""
    if len(vectors) < 4:  # silhouette needs 2 <= k <= n - 1 with room to compare
        return 2, {}
    rng = np.random.default_rng(seed)
    sample = vectors
    if len(vectors) > SILHOUETTE_SAMPLE:
        sample = vectors[np.sort(rng.choice(len(vectors), SILHOUETTE_SAMPLE, replace=False))]
    scores = {}
    for k in auto_k_candidates(len(vectors)):
        # One run per candidate: the scores only rank candidates, and 8 runs of 3 cost seconds.
        labels, _ = kmeans(sample, k, seed, restarts=1)
        scores[k] = silhouette(sample, labels)
    return max(scores, key=scores.__getitem__), scores


def terms(text: str) -> list[str]:
    """A text's label terms: words that are not stop words, and bigrams of two such words.

    Bigrams never span punctuation, so "ATM, lost" gives no "atm lost".
    """
    tokens = _TOKEN.findall(text[:LABEL_CHARS].lower().replace("\u2019", "'"))
    # Punctuation tokens are one character long, so they drop out here too, breaking bigrams.
    kept = [t if len(t) > 2 and t not in STOP_WORDS else None for t in tokens]
    unigrams = [t for t in kept if t]
    bigrams = [f"{a} {b}" for a, b in zip(kept, kept[1:], strict=False) if a and b]
    return unigrams + bigrams


def distinctive_terms(texts: Sequence[str], labels: np.ndarray, k: int) -> list[list[str]]:
    """Per cluster, its top terms by c-TF-IDF (class-based TF-IDF), best first, non-redundant.

    A term's weight in a cluster is its frequency there (as a share of the cluster's terms)
    times log(1 + A / f), where f is its frequency over all clusters and A the average number
    of terms per cluster: frequent in this cluster, rare elsewhere.
    """
    members: list[list[str]] = [[] for _ in range(k)]
    for text, label in zip(texts, labels, strict=True):
        members[label] += terms(text)
    # Counting whole lists runs in C; merging Counters would loop in Python.
    counts = [Counter(found) for found in members]
    overall = Counter(chain.from_iterable(members))
    average = sum(overall.values()) / k
    tops = []
    for counter in counts:
        total = sum(counter.values()) or 1
        # A term must occur at least twice in its cluster (when any does) to name it.
        floor = 2 if total > len(counter) else 1
        weights = {
            term: count / total * math.log(1 + average / overall[term])
            for term, count in counter.items()
            if count >= floor
        }
        # Rank only the best few fully (sorting ~100k terms per cluster with a Python key
        # cost 0.3 s); on a tie a single word wins: "stolen" reads better than "card stolen".
        best = heapq.nlargest(TOP_TERMS * 10, weights.items(), key=itemgetter(1))
        ranked = [term for term, _ in sorted(best, key=lambda t: (-t[1], t[0].count(" "), t[0]))]
        tops.append(_non_redundant(ranked, TOP_TERMS))
    return tops


def _non_redundant(ranked: list[str], limit: int) -> list[str]:
    """The first ``limit`` terms that each add a word not already in an earlier term."""
    chosen: list[str] = []
    seen: set[str] = set()
    for term in ranked:
        words = set(term.split())
        if words <= seen:
            continue
        chosen.append(term)
        seen |= words
        if len(chosen) == limit:
            break
    return chosen


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
) -> Clustering:
    """Cluster documents (unit vectors, one per id) into k clusters, or an automatic k if None.

    Clusters are numbered by size, largest first; each gets a label from its top terms.
    """
    check_clusters(k, len(document_ids))
    auto = k is None
    silhouettes: dict[int, float] = {}
    if k is None:
        k, silhouettes = choose_k(vectors, seed)
    labels, centroids = kmeans(vectors, k, seed)
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
    store: Store, collection: Collection, k: int | None = None, seed: int = 0
) -> StoredClustering:
    """Cluster the collection's documents, store the result as its latest, and return it."""
    # ``collection.version`` was read before the vectors: a write landing while this runs
    # leaves the result marked stale rather than passing for current.
    chunk_documents, chunk_vectors = store.document_chunk_vectors(collection.id)
    document_ids, vectors = document_vectors(chunk_documents, chunk_vectors)
    documents = store.document_texts(collection.id, LABEL_CHARS)
    texts = [documents.get(int(i), ("", ""))[1] for i in document_ids]
    clustering = cluster_documents(document_ids, vectors, texts, k, seed)
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
