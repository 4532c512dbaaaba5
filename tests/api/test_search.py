"""The search routes over HTTP (fake encoder): shapes, errors, paging, neighbours, similarity."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.search.fusion import KEYWORD_WEIGHT, MAX_TRUST
from tests.support.api import assert_error, ingest

DOCUMENTS = [
    {
        "title": "Cats",
        "text": "Cats purr and sleep on warm windowsills.",
        "metadata": {"pet": True},
    },
    {"title": "Dogs", "text": "Dogs bark at the postman. A puppy fetches sticks."},
    {"title": "Tea", "text": "Green tea is steeped in hot water <for> three minutes & more."},
    {"title": "Bread", "text": "Sourdough bread needs a lively starter and patience."},
]


@pytest.fixture
def loaded(client: TestClient) -> TestClient:
    ingest(client, DOCUMENTS)
    return client


def test_search_hit_shape(loaded: TestClient) -> None:
    body = loaded.post("/api/search", json={"query": "steeped tea"}).json()
    assert body["mode"] == "hybrid" and body["group_by"] == "document"
    assert body["total"] == 4 and body["has_more"] is False
    hit = body["hits"][0]
    assert hit["rank"] == 1
    assert hit["document"]["title"] == "Tea"
    assert hit["chunk"]["text"].startswith("Green tea")
    assert "<mark>steeped</mark>" in hit["snippet"]
    assert "&lt;for&gt;" in hit["snippet"] and "&amp;" in hit["snippet"]
    explanation = hit["explanation"]
    assert explanation["semantic"]["rank"] == 1 and explanation["keyword"]["rank"] == 1
    assert hit["score"] == explanation["fused"]
    assert 0 < explanation["keyword_weight"] <= KEYWORD_WEIGHT * MAX_TRUST


def test_get_search(loaded: TestClient) -> None:
    body = loaded.get("/api/search", params={"q": "postman", "mode": "keyword"}).json()
    assert [hit["document"]["title"] for hit in body["hits"]] == ["Dogs"]


def test_filters(loaded: TestClient) -> None:
    body = loaded.post(
        "/api/search",
        json={"query": "warm", "mode": "semantic", "filters": {"metadata": {"pet": True}}},
    ).json()
    assert [hit["document"]["title"] for hit in body["hits"]] == ["Cats"]
    cats = body["hits"][0]["document"]["id"]
    got = loaded.get("/api/search", params={"q": "bread", "document_id": [cats]}).json()
    assert [hit["document"]["id"] for hit in got["hits"]] == [cats]


def test_paging_is_stable(client: TestClient) -> None:
    ingest(
        client,
        [{"title": f"N{i}", "text": f"budget meeting notes {i % 4} (ref {i})"} for i in range(30)],
    )
    whole = client.post("/api/search", json={"query": "budget notes", "k": 100}).json()
    seen = []
    for offset in range(0, whole["total"], 4):
        page = client.post("/api/search", json={"query": "budget notes", "k": 4, "offset": offset})
        seen += [hit["document"]["id"] for hit in page.json()["hits"]]
    assert seen == [hit["document"]["id"] for hit in whole["hits"]]
    assert len(set(seen)) == whole["total"] == 30


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"query": "x", "k": 0}, "k"),
        ({"query": "x", "k": 100000}, "k"),
        ({"query": "x", "offset": -3}, "offset"),
        ({"query": "x", "mode": "fuzzy"}, "mode"),
        ({"query": "x", "group_by": "page"}, "group_by"),
        ({"query": ""}, "query"),
        ({"query": "x", "k": "ten"}, "k"),
        ({"query": "x", "mdoe": "keyword"}, "mdoe"),
        ({"k": 3}, "query"),
        ({"query": "x", "filters": {"metadata": {"a": [1]}}}, "filters.metadata.a"),
        ({"query": "x", "filters": {"metadata": {"a": {"$near": 1}}}}, "filters.metadata.a"),
        ({"query": "x", "filters": {"metadata": {"a": {"$gt": "x"}}}}, "filters.metadata.a"),
        ({"query": "x", "filters": {"metadata": {"a": {"$in": 3}}}}, "filters.metadata.a"),
        ({"query": "x", "vector": [0.1] * 32}, "query"),
        ({"vector": [0.1] * 5}, "vector"),
        ({"vector": [0.0] * 32}, "vector"),
        ({"vector": "x"}, "vector"),
        ({"vector": [0.1] * 32, "mode": "keyword"}, "mode"),
        ({"query": "x", "min_score": 2}, "min_score"),
        ({"query": "x", "min_score": "high"}, "min_score"),
        ({"query": "x", "min_score": 0.5, "mode": "keyword"}, "min_score"),
    ],
)
def test_bad_parameters(loaded: TestClient, body: dict, param: str) -> None:
    assert_error(loaded.post("/api/search", json=body), 400, param)


def test_bad_get_parameters(loaded: TestClient) -> None:
    assert_error(loaded.get("/api/search", params={"q": "x", "k": -1}), 400, "k")
    assert_error(loaded.get("/api/search", params={"q": "x", "mode": "x"}), 400, "mode")
    assert_error(loaded.get("/api/search"), 400)


def test_unknown_collection(loaded: TestClient) -> None:
    error = assert_error(loaded.post("/api/search", json={"query": "x", "collection": "nope"}), 404)
    assert "nope" in error["message"]


def test_empty_collection(client: TestClient) -> None:
    ingest(client, [{"text": "only one"}], collection="empty")
    document_id = client.get("/api/documents").json()["data"][0]["id"]
    assert client.delete(f"/api/documents/{document_id}").status_code == 200
    body = client.post("/api/search", json={"query": "x", "collection": "empty"}).json()
    assert body["hits"] == [] and "POST /api/documents" in body["message"]


def test_similar_documents(loaded: TestClient) -> None:
    tea = loaded.post("/api/search", json={"query": "tea"}).json()["hits"][0]["document"]["id"]
    data = loaded.get(f"/api/documents/{tea}/similar", params={"k": 10}).json()["data"]
    assert len(data) == 3 and tea not in {item["document"]["id"] for item in data}
    assert_error(loaded.get("/api/documents/9999/similar"), 404)
    assert_error(loaded.get(f"/api/documents/{tea}/similar", params={"k": 0}), 400, "k")


def test_chunk_neighbors(loaded: TestClient) -> None:
    hit = loaded.post("/api/search", json={"query": "tea"}).json()["hits"][0]
    chunk = hit["chunk"]["id"]
    data = loaded.get(f"/api/chunks/{chunk}/neighbors", params={"k": 2}).json()["data"]
    assert len(data) == 2 and chunk not in {item["chunk"]["id"] for item in data}
    assert_error(loaded.get("/api/chunks/9999/neighbors"), 404)


def test_neighbors_of_text_and_vector(loaded: TestClient) -> None:
    by_text = loaded.post("/api/neighbors", json={"text": "green tea", "k": 1}).json()["data"]
    assert by_text[0]["document"]["title"] == "Tea"
    vector = loaded.post("/api/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "bread"})
    embedding = vector.json()["data"][0]["embedding"]
    data = loaded.post(
        "/api/neighbors", json={"vector": embedding, "k": 10, "group_by": "document"}
    ).json()["data"]
    assert len(data) == 4
    assert_error(loaded.post("/api/neighbors", json={"k": 3}), 400, "text")
    assert_error(loaded.post("/api/neighbors", json={"vector": [1.0, 2.0]}), 400, "vector")


def test_similarity(client: TestClient) -> None:
    pair = client.post("/api/similarity", json={"a": "cats purr", "b": "cats purr"}).json()
    assert pair["similarity"] == pytest.approx(1.0, abs=1e-5)
    matrix = client.post("/api/similarity", json={"texts": ["a cat", "a dog", "tax"]}).json()
    values = matrix["matrix"]
    assert len(values) == 3 and all(len(row) == 3 for row in values)
    assert values[0][1] == pytest.approx(values[1][0])
    assert values[2][2] == pytest.approx(1.0, abs=1e-5)
    assert_error(client.post("/api/similarity", json={"a": "x"}), 400, "texts")
    assert_error(client.post("/api/similarity", json={"texts": []}), 400, "texts")
    assert_error(client.post("/api/similarity", json={"a": "x", "b": " "}), 400, "texts")


def test_filter_operators(loaded: TestClient) -> None:
    def titles(metadata: dict, path: str = "/api/search") -> set[str]:
        body = {"query": "warm water", "k": 10, "filters": {"metadata": metadata}}
        response = loaded.post(path, json=body)
        assert response.status_code == 200, response.text
        return {hit["document"]["title"] for hit in response.json()["hits"]}

    assert titles({"pet": True}) == {"Cats"}
    assert titles({"pet": {"$ne": True}}) == {"Dogs", "Tea", "Bread"}
    assert titles({"pet": {"$exists": True}}) == {"Cats"}
    assert titles({"pet": {"$in": [False, True]}}) == {"Cats"}


def test_neighbors_and_listing_take_the_same_filters(loaded: TestClient) -> None:
    body = {"text": "animals", "k": 10, "group_by": "document"}
    everything = loaded.post("/api/neighbors", json=body).json()["data"]
    assert len(everything) == 4
    body["filters"] = {"metadata": {"pet": {"$exists": True}}}
    only = loaded.post("/api/neighbors", json=body).json()["data"]
    assert [n["document"]["title"] for n in only] == ["Cats"]
    bad = {**body, "filters": {"metadata": {"pet": {"$bad": 1}}}}
    assert "'$bad'" in assert_error(loaded.post("/api/neighbors", json=bad), 400)["message"]
    listed = loaded.get("/api/documents", params={"filters": '{"metadata": {"pet": true}}'})
    assert [d["title"] for d in listed.json()["data"]] == ["Cats"] and listed.json()["total"] == 1
    wrong = loaded.get("/api/documents", params={"filters": '{"metadata": {"pet": {"$x": 1}}}'})
    assert_error(wrong, 400, "filters.metadata.pet")
    assert_error(loaded.get("/api/documents", params={"filters": "{"}), 400, "filters")


def test_search_by_vector_matches_search_by_text(loaded: TestClient) -> None:
    text = "green tea steeped in hot water"
    vector = loaded.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": text})
    by_vector = loaded.post(
        "/api/search", json={"vector": vector.json()["data"][0]["embedding"], "k": 4}
    ).json()
    by_text = loaded.post("/api/search", json={"query": text, "mode": "semantic", "k": 4}).json()
    assert by_vector["mode"] == "semantic"
    assert [h["document"]["id"] for h in by_vector["hits"]] == [
        h["document"]["id"] for h in by_text["hits"]
    ]
    assert by_vector["hits"][0]["similarity"] == pytest.approx(by_text["hits"][0]["similarity"])


def test_similarity_and_min_score(loaded: TestClient) -> None:
    for mode in ("hybrid", "semantic"):
        body = {"query": "green tea steeped", "mode": mode, "k": 10}
        hits = loaded.post("/api/search", json=body).json()["hits"]
        sims = [hit["similarity"] for hit in hits]
        assert all(-1 <= s <= 1 for s in sims) and len(hits) == 4
        if mode == "semantic":
            assert sims == sorted(sims, reverse=True)
            assert sims == pytest.approx([hit["score"] for hit in hits])
        cut = sorted(sims)[2]
        kept = loaded.post("/api/search", json={**body, "min_score": cut}).json()
        assert kept["total"] == 2 and all(h["similarity"] >= cut for h in kept["hits"])
    keyword = loaded.post("/api/search", json={"query": "tea", "mode": "keyword"}).json()
    assert keyword["hits"][0]["similarity"] is None
