"""Clustering: k-means on seeded synthetic clusters, automatic k, c-TF-IDF labels, storage."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import silhouette_score, v_measure_score

from app.errors import BadRequest
from app.search import clusters
from app.search.clusters import (
    check_clusters,
    choose_k,
    cluster_collection,
    cluster_documents,
    cut,
    document_vectors,
    kmeans,
    normalise,
    silhouette,
    ward,
)
from app.search.labels import distinctive_terms, terms
from app.store.database import Store
from app.store.records import ChunkRecord, Collection

DIMENSIONS = 24


def blobs(
    rng: np.random.Generator, clusters: int, per_cluster: int, spread: float = 0.25
) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around ``clusters`` random centres, and each one's true cluster."""
    centres = normalise(rng.normal(size=(clusters, DIMENSIONS)))
    truth = np.repeat(np.arange(clusters), per_cluster)
    noise = rng.normal(scale=spread / np.sqrt(DIMENSIONS), size=(len(truth), DIMENSIONS))
    return normalise(centres[truth] + noise), truth


TOPICS = {
    "card": "my card was lost and stolen yesterday, please block the lost card",
    "transfer": "the bank transfer is still pending, when will the transfer arrive",
    "refund": "the merchant refused my refund request, I want a refund for the return",
}


def add(store: Store, collection: Collection, text: str, vectors: np.ndarray) -> int:
    """Store a document whose chunks (one per vector) all hold ``text``."""
    chunks = [ChunkRecord(seq, text, 0, len(text), 5) for seq in range(len(vectors))]
    fields = {
        "title": text[:20],
        "source_name": "t.txt",
        "source_type": "text/plain",
        "size": len(text),
        "content_hash": f"{text}-{vectors[0, 0]}",
        "text": text,
    }
    return store.add_document(collection.id, fields, chunks, vectors).document_id


@pytest.fixture
def topics(store: Store) -> tuple[Collection, dict[int, str]]:
    """A collection of 30 documents in three topics (two chunks each), and each one's topic."""
    collection = store.ensure_collection("topics", "m", DIMENSIONS, "faiss")
    rng = np.random.default_rng(7)
    vectors, truth = blobs(rng, 3, 20)
    names = list(TOPICS)
    topic_of = {}
    for row in range(0, len(vectors), 2):
        name = names[truth[row]]
        topic_of[add(store, collection, TOPICS[name], vectors[row : row + 2])] = name
    return store.get_collection("topics"), topic_of


def test_kmeans_recovers_seeded_clusters() -> None:
    vectors, truth = blobs(np.random.default_rng(0), 8, 40, spread=0.6)
    labels, centroids = kmeans(vectors, 8, seed=0)
    assert v_measure_score(truth, labels) > 0.95
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1, atol=1e-4)  # spherical


def test_kmeans_is_repeatable_with_a_seed() -> None:
    vectors, _ = blobs(np.random.default_rng(1), 5, 30, spread=1.5)
    assert np.array_equal(kmeans(vectors, 5, seed=3)[0], kmeans(vectors, 5, seed=3)[0])


def test_cut_undoes_the_last_merges() -> None:
    # Leaves 0..3; merges: (0, 1) -> 4, (2, 3) -> 5, (4, 5) -> 6.
    children = np.array([[0, 1], [2, 3], [4, 5]])
    assert cut(children, 4, 1).tolist() == [0, 0, 0, 0]
    assert cut(children, 4, 2).tolist() == [0, 0, 1, 1]
    assert cut(children, 4, 4).tolist() == [0, 1, 2, 3]


def test_ward_tree_recovers_seeded_clusters_and_auto_k_cuts_it() -> None:
    vectors, truth = blobs(np.random.default_rng(5), 5, 30, spread=0.4)
    children = ward(vectors)
    assert v_measure_score(truth, cut(children, len(vectors), 5)) > 0.95
    assert choose_k(vectors, children=children)[0] == 5  # a candidate, as 6 is not


def test_silhouette_matches_sklearn_cosine() -> None:
    vectors, truth = blobs(np.random.default_rng(2), 4, 25, spread=1.0)
    truth[0] = 4  # a singleton cluster scores 0, as in sklearn
    expected = silhouette_score(vectors, truth, metric="cosine")
    assert silhouette(vectors, truth) == pytest.approx(expected, abs=1e-5)


def test_choose_k_finds_well_separated_clusters() -> None:
    vectors, _ = blobs(np.random.default_rng(3), 5, 30, spread=0.3)
    k, scores = choose_k(vectors)
    assert k == 5
    assert 2 in scores and max(scores) >= 5


def test_document_vector_is_the_normalised_mean_of_its_chunks() -> None:
    chunk_documents = np.array([7, 3, 7])
    chunk_vectors = np.array([[1, 0], [0, 2], [0, 1]], dtype=np.float32)
    ids, vectors = document_vectors(chunk_documents, chunk_vectors)
    assert ids.tolist() == [3, 7]
    assert np.allclose(vectors, [[0, 1], [np.sqrt(0.5), np.sqrt(0.5)]])


def test_terms_drop_stop_words_and_keep_bigrams_of_content_words() -> None:
    assert terms("I lost my card in the ATM, lost card!") == [
        "lost",
        "card",
        "atm",
        "lost",
        "card",
        "lost card",
    ]
    assert terms("Card arrival: card arrived.") == [
        "card",
        "arrival",
        "card",
        "arrived",
        "card arrival",
        "card arrived",
    ]


def test_distinctive_terms_name_each_cluster() -> None:
    texts = [
        "my card was lost",
        "lost card, stolen card",
        "card stolen at the shop",
        "transfer pending for days",
        "pending bank transfer",
        "why is my transfer pending",
    ]
    labels = np.array([0, 0, 0, 1, 1, 1])
    card, transfer = distinctive_terms(texts, labels, 2)
    assert set(card[:3]) == {"card", "lost", "stolen"}
    assert transfer[0] == "transfer pending"  # the phrase makes up most of either word's use
    assert "bank" not in card and "card" not in transfer


def test_distinctive_terms_skip_terms_adding_no_new_word() -> None:
    texts = ["lost card lost card", "lost card again lost card", "weather sunny"]
    card, _ = distinctive_terms(texts, np.array([0, 0, 1]), 2)
    assert card[0] == "lost card" and "lost" not in card and "card" not in card


def test_terms_common_to_most_clusters_name_none() -> None:
    topics = ["football match goal", "election vote minister", "oil prices market"]
    texts = [f"reuters news {topic} {n}" for topic in topics for n in ("one", "two")]
    labels = np.repeat(np.arange(3), 2)
    for found, topic in zip(distinctive_terms(texts, labels, 3), topics, strict=True):
        assert not {"reuters", "news", "reuters news"} & set(found)
        assert any(term in topic for term in found)


@pytest.mark.parametrize(
    ("k", "documents", "message"),
    [
        (1, 10, "between 2 and the number of documents \\(10\\); got 1"),
        (11, 10, "got 11.*smaller k.*auto"),
        (None, 1, "at least 2 documents and the collection has 1"),
        (3, 0, "at least 2 documents and the collection has 0"),
    ],
)
def test_check_k_refuses_impossible_requests(k: int | None, documents: int, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        check_clusters(k, documents)


@pytest.mark.parametrize(("ward_max", "uses_ward"), [(100, True), (29, False)])
def test_ward_seeds_k_means_up_to_the_configured_size(
    monkeypatch: pytest.MonkeyPatch, ward_max: int, uses_ward: bool
) -> None:
    vectors, truth = blobs(np.random.default_rng(5), 3, 10, spread=0.2)
    called = []
    original = clusters.ward
    monkeypatch.setattr(clusters, "ward", lambda v: called.append(len(v)) or original(v))
    texts = ["text"] * len(truth)
    result = cluster_documents(np.arange(len(truth)), vectors, texts, 3, ward_max=ward_max)
    assert called == ([30] if uses_ward else [])
    assert v_measure_score(truth, result.assignments) == pytest.approx(1.0)


def test_clusters_are_numbered_by_size_with_labels_and_nearest_documents() -> None:
    vectors, truth = blobs(np.random.default_rng(4), 3, 10, spread=0.2)
    vectors, truth = vectors[:-5], truth[:-5]  # sizes 10, 10, 5
    texts = [f"word{label} shared{label} filler" for label in truth]
    result = cluster_documents(np.arange(100, 100 + len(truth)), vectors, texts, k=3)
    assert [c.size for c in result.clusters] == [10, 10, 5]
    small = result.clusters[2]
    # Ties go alphabetically; each word always comes in one phrase, which stands for it.
    assert small.terms == ["shared2 filler", "word2 shared2"]
    assert small.label == "shared2 filler · word2 shared2"  # "filler" alone is everywhere
    assert len(small.nearest) == 5 and all(truth[i - 100] == 2 for i in small.nearest)
    assert not result.auto and result.silhouettes == {}


def test_cluster_collection_stores_result_and_each_documents_cluster(
    store: Store, topics: tuple[Collection, dict[int, str]]
) -> None:
    collection, topic_of = topics
    stored = cluster_collection(store, collection, k=3)
    assert stored.version == collection.version
    assert stored.result["k"] == 3 and stored.result["documents"] == 30
    by_cluster: dict[int, set[str]] = {}
    for document_id, topic in topic_of.items():
        cluster = store.document_cluster(document_id)
        assert cluster is not None
        by_cluster.setdefault(cluster, set()).add(topic)
    assert sorted(map(len, by_cluster.values())) == [1, 1, 1]  # each cluster is one topic
    for cluster in stored.result["clusters"]:
        [topic] = by_cluster[cluster["id"]]
        assert topic in cluster["label"]
        assert cluster["nearest"][0]["title"] == TOPICS[topic][:20]
    assert store.get_clustering(collection.id) == stored


def test_a_new_clustering_replaces_the_old_and_deleted_documents_lose_theirs(
    store: Store, topics: tuple[Collection, dict[int, str]]
) -> None:
    collection, topic_of = topics
    cluster_collection(store, collection, k=3)
    cluster_collection(store, collection, k=2)
    assert store.get_clustering(collection.id).result["k"] == 2
    assert set(store.document_clusters(collection.id).values()) == {0, 1}
    first = next(iter(topic_of))
    store.delete_document(first)
    assert store.document_cluster(first) is None
    assert store.get_clustering(collection.id).version < store.get_collection("topics").version
