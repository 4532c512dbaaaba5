"""Hostile input: each gets a clear 4xx in the API's error shape and leaves the store unchanged."""

from __future__ import annotations

import json

import pytest

from tests.support.api import assert_error
from tests.support.hostile import many_pages_pdf, zip_bomb

MODEL = "all-MiniLM-L6-v2"
JSON = {"content-type": "application/json"}


@pytest.fixture
def stored(client):
    """The client, with one document stored; the test checks it is all that stays."""
    client.post("/api/documents?wait=true", json={"text": "the one stored document"})
    yield client
    assert client.get("/api/documents").json()["total"] == 1


@pytest.mark.parametrize(
    ("name", "data", "status"),
    [
        ("bomb.docx", zip_bomb(), 422),
        ("fake.pdf", b"%PDF-1.7 this is not a pdf", 422),
        ("pages.pdf", many_pages_pdf(2500), 422),
        ("../../etc/passwd", b"root:x:0:0", 415),
        ("binary.exe", b"MZ\x90\x00", 415),
        ("empty.md", b"", 422),
        ("nul.txt", b"\x00\x00\x00", 422),
    ],
)
def test_hostile_files(stored, name: str, data: bytes, status: int) -> None:
    response = stored.post("/api/documents", files={"files": (name, data)})
    assert_error(response, status)


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "all-MiniLM-L6-v2", "input": ',
        b"[" * 50_000 + b"]" * 50_000,
        b'{"model": "all-MiniLM-L6-v2", "input": "\xff\xfe"}',
        b"\x00\x00\x00",
    ],
)
def test_malformed_json(stored, body: bytes) -> None:
    for path in ("/v1/embeddings", "/api/documents", "/api/search"):
        assert_error(stored.post(path, content=body, headers=JSON), 400)


def test_malformed_multipart(stored) -> None:
    broken = {"content-type": "multipart/form-data; boundary=xyz"}
    assert_error(stored.post("/api/documents", content=b"--xyz\r\nbroken", headers=broken), 400)
    no_boundary = {"content-type": "multipart/form-data"}
    assert_error(stored.post("/api/documents", content=b"abc", headers=no_boundary), 400)


def test_too_many_inputs_and_huge_strings(stored) -> None:
    assert_error(stored.post("/v1/embeddings", json={"model": MODEL, "input": ["x"] * 2049}), 400)
    huge = {"model": MODEL, "input": "x" * 20_000_000}
    assert_error(stored.post("/v1/embeddings", json=huge), 413)


def test_unicode_is_text_not_trouble(stored) -> None:
    """Zero-width, right-to-left and emoji text embeds and searches like any other."""
    for text in ("\u200b\u200bzero\u200bwidth", "\u202eright to left\u202c שלום", "emoji 🦀🔥"):
        r = stored.post("/v1/embeddings", json={"model": MODEL, "input": text})
        assert r.status_code == 200
        r = stored.post("/api/search", json={"query": text})
        assert r.status_code == 200


def test_windows_device_names_are_labels(client) -> None:
    job = client.post("/api/documents?wait=true", files={"files": ("con.txt", b"console")}).json()
    assert job["state"] == "done"
    assert client.get(f"/api/documents/{job['documents'][0]}").json()["title"] == "con"


@pytest.mark.parametrize("mode", ["keyword", "hybrid", "semantic"])
def test_long_queries_are_refused_before_any_work(stored, mode: str) -> None:
    words = " ".join(f"word{i}" for i in range(300))
    error = assert_error(stored.post("/api/search", json={"query": words, "mode": mode}), 400)
    assert "EMBEDSEARCH_MAX_QUERY_WORDS" in error["message"]
    huge = "x" * 9000
    error = assert_error(stored.post("/api/search", json={"query": huge, "mode": mode}), 400)
    assert "EMBEDSEARCH_MAX_QUERY_BYTES" in error["message"]
    assert stored.post("/api/search", json={"query": words[:500], "mode": mode}).status_code == 200


def test_query_limits_are_settings(make_client) -> None:
    client = make_client(max_query_words=3)
    client.post("/api/documents?wait=true", json={"text": "one two three four"})
    assert client.post("/api/search", json={"query": "one two three"}).status_code == 200
    assert_error(client.post("/api/search", json={"query": "one two three four"}), 400, "query")
    assert_error(client.post("/api/neighbors", json={"text": "one two three four"}), 400, "text")


def test_metadata_filter_with_too_many_keys(stored) -> None:
    filters = {"metadata": {f"key{i}": i for i in range(999)}}
    error = assert_error(stored.post("/api/search", json={"query": "x", "filters": filters}), 400)
    assert "EMBEDSEARCH_MAX_FILTER_KEYS" in error["message"]


def test_clusters_k_is_bounded(make_client) -> None:
    client = make_client(max_clusters=3)
    documents = [{"text": f"document number {i} about topic {i % 3}"} for i in range(6)]
    client.post("/api/documents?wait=true", json={"documents": documents})
    error = assert_error(client.post("/api/clusters", json={"k": 4}), 400, "k")
    assert "EMBEDSEARCH_MAX_CLUSTERS" in error["message"]
    assert client.post("/api/clusters", json={"k": 3}).status_code == 200


LONE = '"\\ud800"'


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/search", '{"query": LONE}'),
        ("/v1/embeddings", '{"model": "all-MiniLM-L6-v2", "input": [LONE]}'),
        ("/api/similarity", '{"a": LONE, "b": "x"}'),
        ("/api/neighbors", '{"text": LONE}'),
        ("/api/documents", '{"text": "a\\udfffb"}'),
        ("/api/search", '{"query": "x", "filters": {"metadata": {LONE: 1}}}'),
    ],
)
def test_lone_surrogates_are_refused(stored, path: str, body: str) -> None:
    body = body.replace("LONE", LONE)
    error = assert_error(stored.post(path, content=body, headers=JSON), 400)
    assert "surrogate" in error["message"]


def test_surrogate_pairs_are_text(stored) -> None:
    body = '{"query": "crab \\ud83e\\udd80"}'
    assert stored.post("/api/search", content=body, headers=JSON).status_code == 200


def test_lone_surrogate_in_an_uploaded_json_fails_that_file_alone(stored) -> None:
    files = [
        ("files", ("bad.json", b'{"text": "broken \\ud800 text"}')),
        ("files", ("good.txt", b"a good file")),
    ]
    job = stored.post("/api/documents?wait=true", files=files).json()
    results = {f["name"]: f for f in job["result"]["files"]}
    assert results["bad.json"]["status"] == "failed"
    assert "surrogate" in results["bad.json"]["error"]
    assert results["good.txt"]["status"] == "added"
    stored.delete(f"/api/documents/{results['good.txt']['documents'][0]}")


@pytest.mark.parametrize("path", ["/api/search", "/v1/embeddings", "/api/documents"])
@pytest.mark.parametrize("kind", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_api_bodies_must_be_json(stored, path: str, kind: str) -> None:
    body = json.dumps({"query": "x", "text": "x", "model": MODEL, "input": "x"})
    assert_error(stored.post(path, content=body, headers={"content-type": kind}), 415)


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "cross-site"},
        {"origin": "http://evil.example"},
        {"origin": "http://evil.example", "sec-fetch-site": "cross-site"},
    ],
)
def test_cross_site_api_writes_are_refused_even_with_the_cookie(make_client, headers) -> None:
    client = make_client(api_keys=["k1"])
    client.cookies.set("embedsearch_key", "k1")
    created = client.post("/api/documents?wait=true", json={"text": "mine"})
    assert created.status_code == 200
    [doc_id] = created.json()["documents"]
    files = {"files": ("x.txt", b"planted")}
    assert_error(client.post("/api/documents", files=files, headers=headers), 403)
    assert_error(client.delete(f"/api/documents/{doc_id}", headers=headers), 403)
    body = {"query": "mine"}
    assert_error(client.post("/api/search", json=body, headers=headers), 403)
    # The same requests from the app's own pages, or with the key in a header, go through.
    bearer = {**headers, "authorization": "Bearer k1"}
    assert client.post("/api/search", json=body, headers=bearer).status_code == 200
    same = {"sec-fetch-site": "same-origin", "origin": "http://testserver"}
    assert client.delete(f"/api/documents/{doc_id}", headers=same).status_code == 200
