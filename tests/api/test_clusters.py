"""POST/GET /api/clusters and GET /api/map through the app (fake encoder), errors included."""

from __future__ import annotations

import pytest

# The fake encoder sums token vectors: repeated topic words keep the topics far apart.
TOPICS = {
    "cards": [
        "Lost card, stolen card, lost card stolen",
        "Stolen card lost: card lost, card stolen",
        "Card lost card stolen card",
        "Lost stolen card card lost",
    ],
    "transfers": [
        "Pending transfer, bank transfer pending",
        "Transfer pending: pending bank transfer",
        "Bank transfer pending transfer",
        "Pending pending transfer bank",
    ],
    "weather": [
        "Sunny weather, rain weather, sunny rain",
        "Weather sunny: weather rain sunny",
        "Rain sunny weather weather",
        "Sunny rain weather sunny",
    ],
}


def ingest(client, texts: list[str], collection: str = "default") -> list[int]:
    """Add one document per text and wait for the job; returns the new document ids."""
    # External ids keep documents from separate requests apart (else they replace each other).
    documents = [{"title": text[:24], "text": text, "external_id": text} for text in texts]
    r = client.post(
        "/api/documents",
        params={"wait": "true"},
        json={"collection": collection, "documents": documents},
    )
    assert r.status_code == 200, r.text
    return r.json()["documents"]


@pytest.fixture
def topics(client) -> dict[str, list[int]]:
    """Three topics of four documents each in the default collection: topic -> ids."""
    return {topic: ingest(client, texts) for topic, texts in TOPICS.items()}


def assert_error(r, status: int, param: str | None, *phrases: str) -> None:
    """The response is an OpenAI-shaped error with this status, param and message phrases."""
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param
    for phrase in phrases:
        assert phrase in error["message"]


def test_cluster_then_read_back(client, topics: dict[str, list[int]]) -> None:
    r = client.post("/api/clusters", json={"collection": "default", "k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "clustering" and body["k"] == 3 and body["auto"] is False
    assert body["documents"] == 12 and body["stale"] is False
    assert sorted(c["size"] for c in body["clusters"]) == [4, 4, 4]
    labels = " | ".join(c["label"] for c in body["clusters"])
    for word in ("card", "transfer", "weather"):
        assert word in labels
    for cluster in body["clusters"]:
        assert 1 <= len(cluster["nearest"]) <= 5 and {"id", "title"} == set(cluster["nearest"][0])
        assert " · " in cluster["label"]
    assert client.get("/api/clusters", params={"collection": "default"}).json() == body


def test_auto_k_is_the_default_and_lists_candidate_scores(client, topics) -> None:
    body = client.post("/api/clusters").json()
    assert body["auto"] is True and body["collection"] == "default"
    assert str(body["k"]) in body["silhouettes"] and len(body["clusters"]) == body["k"]
    assert client.post("/api/clusters", json={"k": "auto"}).json()["k"] == body["k"]


def test_result_goes_stale_after_an_upload(client, topics) -> None:
    client.post("/api/clusters", json={"k": 3})
    ingest(client, ["A brand new document about gardening"])
    body = client.get("/api/clusters").json()
    assert body["stale"] is True and body["version"] < body["collection_version"]
    assert client.post("/api/clusters", json={"k": 3}).json()["stale"] is False


def test_map_gives_every_document_a_point_with_its_cluster(client, topics) -> None:
    body = client.get("/api/map").json()
    assert body["object"] == "map" and body["clustered"] is False
    assert body["method"] == "pca" and body["state"] == "ready"  # too few documents for t-SNE
    assert len(body["points"]) == 12 and all(p["cluster"] is None for p in body["points"])
    assert all(-1 <= p["x"] <= 1 and -1 <= p["y"] <= 1 for p in body["points"])
    client.post("/api/clusters", json={"k": 3})
    body = client.get("/api/map").json()
    assert body["clustered"] is True and body["clusters_stale"] is False
    assert len(body["clusters"]) == 3
    by_topic = {
        topic: {p["cluster"] for p in body["points"] if p["id"] in ids}
        for topic, ids in topics.items()
    }
    assert all(len(clusters) == 1 for clusters in by_topic.values())
    titles = {p["title"] for p in body["points"]}
    assert TOPICS["cards"][0][:24].strip() in titles  # titles are trimmed


def test_map_follows_new_documents(client, topics) -> None:
    first = client.get("/api/map").json()
    [new_id] = ingest(client, ["Gardening tips for spring"])
    second = client.get("/api/map").json()
    assert second["version"] > first["version"] and len(second["points"]) == 13
    assert new_id in {p["id"] for p in second["points"]}


@pytest.mark.parametrize(
    ("body", "param", "phrases"),
    [
        ({"k": 1}, "k", ["between 2 and the number of documents (12); got 1"]),
        ({"k": 13}, "k", ["got 13", "smaller k", '"auto"']),
        ({"k": "many"}, "k", ["integer of at least 2 or \"auto\"; got 'many'"]),
        ({"k": 2**70}, "k", ["got 1180591620717411303424"]),
        ({"k": 2, "seed": -1}, "seed", ["'seed'"]),
    ],
)
def test_impossible_k_is_a_400(client, topics, body, param, phrases) -> None:
    assert_error(client.post("/api/clusters", json=body), 400, param, *phrases)


def test_unknown_collection_is_a_404(client) -> None:
    r = client.post("/api/clusters", json={"collection": "nope", "k": 2})
    assert_error(r, 404, "collection", "No collection named 'nope'")
    assert_error(client.get("/api/map", params={"collection": "nope"}), 404, "collection")


def test_too_few_documents_say_what_to_do(client) -> None:
    ingest(client, ["Only one document here"], collection="tiny")
    r = client.post("/api/clusters", json={"collection": "tiny"})
    assert_error(r, 400, "collection", "at least 2 documents", "POST /api/documents")


def test_reading_clusters_before_clustering_is_a_404(client, topics) -> None:
    r = client.get("/api/clusters")
    assert_error(r, 404, "collection", "not been clustered yet", "POST /api/clusters")
