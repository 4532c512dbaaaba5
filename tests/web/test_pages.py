"""Fast page tests: the in-process app with the fake encoder renders every page."""

from __future__ import annotations

import html
import json
import re
import shlex

import pytest
from fastapi.testclient import TestClient

from app.api.auth import COOKIE
from app.web.session import safe_next

KEY = "page-test-key"
PAGES = ["/", "/upload", "/documents", "/clusters", "/playground", "/docs"]


def add(client: TestClient, *documents: dict, collection: str = "default") -> list[int]:
    """Ingest JSON documents and wait; return their ids."""
    body = {"collection": collection, "documents": list(documents)}
    response = client.post("/api/documents?wait=true", json=body)
    assert response.status_code == 200, response.text
    return response.json()["documents"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_with_nav_and_security_headers(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<nav aria-label="Main">' in response.text
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert "<script>" not in response.text  # every script is a file under /static


def test_api_responses_and_errors_carry_the_security_headers_too(client: TestClient) -> None:
    for response in (client.get("/api/collections"), client.get("/api/nothing-here")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" in response.headers


def test_empty_collection_points_to_upload(client: TestClient) -> None:
    text = client.get("/?q=anything").text
    assert "Nothing here yet" in text and 'href="/upload' in text


def test_search_page_shows_hits_with_marked_snippets_and_escaped_text(client: TestClient) -> None:
    add(
        client,
        {
            "title": "Volcano <b>notes</b>",
            "text": "Lava flows from the volcano <script>x()</script>.",
        },
        {"title": "Bread", "text": "Knead the dough and bake the bread."},
    )
    response = client.get("/", params={"q": "volcano lava", "mode": "keyword", "scores": "1"})
    assert response.status_code == 200
    text = response.text
    assert "Volcano &lt;b&gt;notes&lt;/b&gt;" in text
    assert "<mark>" in text and "<script>x()" not in text
    assert 'class="results show-scores"' in text and "More like this" in text
    assert 'value="volcano lava"' in text  # the query stays in the box (and the URL)


def test_search_pages_through_results(client: TestClient) -> None:
    add(client, *({"title": f"Note {i}", "text": f"common words note {i}"} for i in range(23)))
    first = client.get("/", params={"q": "common words", "mode": "keyword"}).text
    assert "Page 1 of 3" in first and 'rel="next"' in first
    last = client.get("/", params={"q": "common words", "mode": "keyword", "page": "3"}).text
    assert "Page 3 of 3" in last and last.count('class="hit"') == 3


def test_unknown_collection_and_bad_parameters_are_explained_not_crashed(
    client: TestClient,
) -> None:
    add(client, {"title": "A", "text": "alpha"})
    text = client.get("/", params={"q": "alpha", "collection": "nope", "mode": "weird"}).text
    assert "There is no collection named <strong>nope</strong>" in text
    for page in ("²", "-1", str(2**64), "x"):
        assert client.get("/", params={"q": "alpha", "page": page}).status_code == 200
        assert client.get("/documents", params={"page": page}).status_code == 200


def test_document_page_shows_chunks_and_similar_documents(client: TestClient) -> None:
    ids = add(
        client,
        {"title": "Long", "text": "Sentence about rivers and lakes. " * 120},
        {"title": "Other", "text": "Rivers and lakes hold fresh water."},
    )
    text = client.get(f"/documents/{ids[0]}").text
    assert 'id="chunk-0"' in text and 'id="chunk-1"' in text
    assert 'class="seg overlap"' in text
    assert f'href="/documents/{ids[1]}"' in text  # listed as similar


@pytest.mark.parametrize(
    "path",
    [
        "/documents/999",
        "/documents/abc",
        "/documents/²",
        f"/documents/{2**63}",
        "/documents/9/delete",
    ],
)
def test_unknown_document_is_an_html_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Not found" in response.text


def test_documents_list_and_delete_with_confirmation_page(client: TestClient) -> None:
    (doc_id,) = add(client, {"title": "Doomed", "text": "to be deleted"})
    listing = client.get("/documents").text
    assert "Doomed" in listing and f'href="/documents/{doc_id}/delete"' in listing
    assert "Delete this document?" in client.get(f"/documents/{doc_id}/delete").text
    form = {"csrf_token": token(client, f"/documents/{doc_id}/delete")}
    response = client.post(f"/documents/{doc_id}/delete", data=form, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/documents?deleted=1"
    assert client.get(f"/api/documents/{doc_id}").status_code == 404
    assert "The document was deleted." in client.get("/documents?deleted=1").text


@pytest.mark.parametrize(
    ("headers", "with_token"),
    [
        ({"sec-fetch-site": "cross-site"}, True),
        ({"sec-fetch-site": "same-site"}, True),
        ({"origin": "http://evil.example"}, True),
        ({"origin": "null"}, True),
        ({}, False),  # no Origin, no Sec-Fetch-Site: only the token tells
    ],
)
def test_cross_site_form_posts_are_refused(client: TestClient, headers, with_token) -> None:
    (doc_id,) = add(client, {"title": "Kept", "text": "stays"})
    form = {"csrf_token": token(client, f"/documents/{doc_id}/delete") if with_token else "x"}
    response = client.post(f"/documents/{doc_id}/delete", data=form, headers=headers)
    assert response.status_code == 403
    assert client.get(f"/api/documents/{doc_id}").status_code == 200


def test_same_origin_form_posts_with_the_token_work(client: TestClient) -> None:
    (doc_id,) = add(client, {"title": "Gone", "text": "goes"})
    form = {"csrf_token": token(client, f"/documents/{doc_id}/delete")}
    headers = {"origin": "http://testserver", "sec-fetch-site": "same-origin"}
    response = client.post(f"/documents/{doc_id}/delete", data=form, headers=headers)
    assert response.status_code == 200  # the redirect, followed
    assert client.get(f"/api/documents/{doc_id}").status_code == 404


def test_clustering_from_the_page(client: TestClient) -> None:
    add(client, *({"title": f"Doc {i}", "text": f"topic {i % 2} words {i}"} for i in range(6)))
    form = {"k": "2", "csrf_token": token(client, "/clusters")}
    response = client.post("/clusters", data=form, follow_redirects=False)
    assert response.status_code == 303
    text = client.get("/clusters").text
    assert 'id="cluster-0"' in text and 'id="cluster-1"' in text and 'id="map"' in text


def test_clustering_error_is_shown_on_the_page(client: TestClient) -> None:
    add(client, {"title": "Only", "text": "one document"})
    response = client.post(
        "/clusters", data={"k": "auto", "csrf_token": token(client, "/clusters")}
    )
    assert response.status_code == 400
    assert "Clustering needs at least 2 documents" in response.text


def test_playground_renders_matrix_and_curl(client: TestClient) -> None:
    response = client.get("/playground", params={"texts": "a cat\na kitten\nit's stock"})
    text = response.text
    assert text.count('class="heat h') == 9 + 11  # the matrix, then the scale
    assert "1.00" in text
    command = html.unescape(re.search(r'<code id="curl">(.*?)</code>', text, re.DOTALL)[1])
    words = shlex.split(command.replace("\\\n", " "))  # as a shell would read it
    assert words[:2] == ["curl", "http://testserver/v1/embeddings"]
    body = json.loads(words[words.index("-d") + 1])
    assert body == {"model": "all-MiniLM-L6-v2", "input": ["a cat", "a kitten", "it's stock"]}


def test_docs_use_vendored_swagger_ui(client: TestClient) -> None:
    text = client.get("/docs").text
    assets = re.findall(r'(?:src|href)="(/static/vendor/[^"]+)"', text)
    assert len(assets) == 2
    for asset in assets:
        assert client.get(asset).status_code == 200
    assert client.get("/static/vendor/swagger-ui/LICENSE").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/redoc").status_code == 404


@pytest.fixture
def keyed(make_client) -> TestClient:
    return make_client(api_keys=[KEY])


@pytest.mark.parametrize("path", PAGES[:-1])
def test_pages_redirect_to_sign_in_when_keys_are_set(keyed: TestClient, path: str) -> None:
    response = keyed.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/signin?next=")


def test_sign_in_sets_a_strict_http_only_cookie_the_api_accepts(keyed: TestClient) -> None:
    assert keyed.get("/api/collections").status_code == 401
    signin = token(keyed, "/signin")
    wrong = keyed.post("/signin", data={"key": "nope", "next": "/documents", "csrf_token": signin})
    assert wrong.status_code == 401 and "That key is not valid." in wrong.text
    response = keyed.post(
        "/signin",
        data={"key": KEY, "next": "/documents?page=2", "csrf_token": signin},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/documents?page=2"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert keyed.get("/documents").status_code == 200
    assert keyed.get("/api/collections").status_code == 200  # the cookie works for the API
    form = {"csrf_token": token(keyed, "/documents")}  # the sign-out form of a signed-in page
    signed_out = keyed.post("/signout", data=form, follow_redirects=False)
    assert signed_out.status_code == 303
    keyed.cookies.delete(COOKIE)
    assert keyed.get("/", follow_redirects=False).status_code == 303


def test_sign_in_page_is_skipped_without_keys(client: TestClient) -> None:
    response = client.get("/signin?next=/upload", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/upload"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/documents?x=1", "/documents?x=1"),
        ("//evil.example", "/"),
        ("https://evil", "/"),
        ("/\\x", "/"),
    ],
)
def test_next_never_leaves_the_site(target: str, expected: str) -> None:
    assert safe_next(target) == expected


def test_unknown_page_is_html_but_unknown_api_route_is_json(client) -> None:
    page = client.get("/no-such-page", headers={"accept": "text/html"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "no page at this address" in page.text
    api = client.get("/api/no-such-route", headers={"accept": "text/html"})
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"


def token(client: TestClient, path: str) -> str:
    """The form token on the page at ``path``, as a browser would submit it."""
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', client.get(path).text)[1]
