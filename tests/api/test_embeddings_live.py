"""Conformance of /v1/embeddings and /api/embeddings: a real server, the real model, and the
official openai client (which asks for base64 by default) next to raw httpx."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import openai
import pytest

from tests.support.api import API_KEY, assert_error

pytestmark = pytest.mark.model
MODEL = "all-MiniLM-L6-v2"
PATHS = ["/v1/embeddings", "/api/embeddings"]


@pytest.fixture(scope="module")
def url(live_server) -> str:
    return live_server[0]


@pytest.fixture(scope="module")
def oai(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0)


@pytest.fixture(scope="module")
def http(url: str):
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}) as c:
        yield c


def post(http: httpx.Client, body: object, path: str = "/v1/embeddings") -> httpx.Response:
    return http.post(path, json=body)


def vectors(response: httpx.Response) -> np.ndarray:
    return np.array([item["embedding"] for item in response.json()["data"]], dtype=np.float32)


def test_openai_client_default_base64(oai: openai.OpenAI) -> None:
    result = oai.embeddings.create(model=MODEL, input=["A cat sits on the mat.", "Dogs bark."])
    assert result.model == MODEL
    assert [d.index for d in result.data] == [0, 1]
    vecs = np.array([d.embedding for d in result.data])
    assert vecs.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    assert result.usage.prompt_tokens == result.usage.total_tokens > 0


def test_openai_client_float_and_dimensions(oai: openai.OpenAI) -> None:
    full = oai.embeddings.create(model=MODEL, input="hello", encoding_format="float")
    cut = oai.embeddings.create(model=MODEL, input="hello", dimensions=64)
    a = np.array(full.data[0].embedding)[:64]
    b = np.array(cut.data[0].embedding)
    assert len(b) == 64
    assert np.allclose(b, a / np.linalg.norm(a), atol=1e-5)


def test_openai_client_alias_reports_model_used(oai: openai.OpenAI) -> None:
    result = oai.embeddings.create(model="text-embedding-3-small", input="alias")
    assert result.model == MODEL


def test_openai_client_errors(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        oai.embeddings.create(model="no-such-model", input="x")
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        oai.embeddings.create(model=MODEL, input="x", dimensions=0)
    bad = openai.OpenAI(base_url=oai.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.embeddings.create(model=MODEL, input="x")
    assert info.value.code == "invalid_api_key"


def test_openai_client_models(oai: openai.OpenAI) -> None:
    ids = [m.id for m in oai.models.list()]
    assert ids[0] == MODEL and "text-embedding-3-small" in ids and "text-embedding-ada-002" in ids
    assert oai.models.retrieve(MODEL).owned_by
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("nope")


@pytest.mark.parametrize("path", PATHS)
def test_response_shape(http: httpx.Client, path: str) -> None:
    r = post(http, {"model": MODEL, "input": ["one", "two words", "three whole words"]}, path)
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list" and body["model"] == MODEL
    assert [(d["object"], d["index"]) for d in body["data"]] == [("embedding", i) for i in range(3)]
    # ids without special tokens: "one"=1, "two words"=2, "three whole words"=3
    assert body["usage"] == {"prompt_tokens": 6, "total_tokens": 6}


def test_paths_agree(http: httpx.Client) -> None:
    body = {"model": MODEL, "input": "same answer on both paths", "user": "u1", "extra": True}
    a, b = (vectors(post(http, body, p)) for p in PATHS)
    assert np.allclose(a, b, atol=1e-6)


def test_base64_is_little_endian_float32(http: httpx.Client) -> None:
    text = "base64 round trip"
    floats = vectors(post(http, {"model": MODEL, "input": text}))[0]
    r = post(http, {"model": MODEL, "input": text, "encoding_format": "base64"})
    decoded = np.frombuffer(base64.b64decode(r.json()["data"][0]["embedding"]), "<f4")
    assert np.allclose(decoded, floats, atol=1e-6)


def test_token_ids_match_text(http: httpx.Client) -> None:
    text = vectors(post(http, {"model": MODEL, "input": "hello world"}))[0]
    # OpenAI cl100k_base ids of "hello world", as OpenAI clients send them
    r = post(http, {"model": MODEL, "input": [15339, 1917]})
    assert r.json()["usage"]["prompt_tokens"] == 2
    assert np.allclose(vectors(r)[0], text, atol=1e-5)
    many = post(http, {"model": MODEL, "input": [[15339, 1917], [15339]]})
    assert len(many.json()["data"]) == 2 and many.json()["usage"]["prompt_tokens"] == 3


def test_batch_of_64_matches_alone(http: httpx.Client) -> None:
    texts = [f"sentence number {i} about {'science ' * (i % 7)}" for i in range(64)]
    batch = vectors(post(http, {"model": MODEL, "input": texts}))
    for i in (0, 17, 63):
        alone = vectors(post(http, {"model": MODEL, "input": texts[i]}))[0]
        assert float(alone @ batch[i]) >= 0.9999


def test_long_input_is_truncated(http: httpx.Client) -> None:
    r = post(http, {"model": MODEL, "input": "word " * 2000})
    assert r.status_code == 200
    assert r.json()["usage"]["prompt_tokens"] == 2000


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": MODEL, "input": ""}, "input"),
        ({"model": MODEL, "input": []}, "input"),
        ({"model": MODEL, "input": [[]]}, "input"),
        ({"model": MODEL, "input": ["a", ""]}, "input"),
        ({"model": MODEL, "input": ["a", 1]}, "input"),
        ({"model": MODEL, "input": [[1, 2], "a"]}, "input"),
        ({"model": MODEL, "input": [1, [2]]}, "input"),
        ({"model": MODEL, "input": [99999999]}, "input"),
        ({"model": MODEL, "input": [-1]}, "input"),
        ({"model": MODEL, "input": None}, "input"),
        ({"model": MODEL, "input": ["x"] * 2049}, "input"),
        ({"model": MODEL, "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": MODEL, "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": MODEL, "input": "x", "dimensions": -5}, "dimensions"),
        ({"model": MODEL, "input": "x", "dimensions": 1.5}, "dimensions"),
        ({"model": MODEL, "input": "x", "dimensions": "8"}, "dimensions"),
        ({"model": MODEL, "input": "x", "dimensions": 385}, "dimensions"),
        ({"input": "x"}, "model"),
        ({"model": 5, "input": "x"}, "model"),
    ],
)
def test_bad_requests(http: httpx.Client, body: dict, param: str) -> None:
    for path in PATHS:
        assert_error(post(http, body, path), 400, param)


def test_unknown_model_is_404(http: httpx.Client) -> None:
    error = assert_error(post(http, {"model": "gpt-9", "input": "x"}), 404, "model")
    assert error["code"] == "model_not_found"


def test_malformed_json_and_content_type(http: httpx.Client) -> None:
    headers = {"content-type": "application/json"}
    assert_error(http.post("/v1/embeddings", content=b'{"model": ', headers=headers), 400)
    assert_error(http.post("/v1/embeddings", content=b"[1, 2]", headers=headers), 400)
    plain = {"content-type": "text/plain"}
    assert_error(http.post("/v1/embeddings", content=b'{"model": "x"}', headers=plain), 415)
    assert_error(http.post("/v1/embeddings", content=b""), 400)


def test_auth(url: str, live_server) -> None:
    body = {"model": MODEL, "input": "x"}
    missing = httpx.post(f"{url}/v1/embeddings", json=body)
    assert assert_error(missing, 401)["code"] is None
    wrong = httpx.post(
        f"{url}/v1/embeddings", json=body, headers={"Authorization": "Bearer nope-secret"}
    )
    assert assert_error(wrong, 401)["code"] == "invalid_api_key"
    assert "nope-secret" not in wrong.text
    assert httpx.get(f"{url}/health").status_code == 200  # health stays open
    assert httpx.get(f"{url}/v1/models").status_code == 401
    log = live_server[1].read_text()
    assert API_KEY not in log and "nope-secret" not in log


def test_the_start_up_log_says_where_and_what(url: str, live_server) -> None:
    log = live_server[1].read_text()
    assert f"embedsearch at {url} (UI at /, API docs at /docs); model {MODEL} on " in log
    assert "; data in /" in log
    assert f"Model ready: {MODEL} on " in log
    assert "faiss.loader" not in log and "Could not load library" not in log


def test_metrics(http: httpx.Client) -> None:
    post(http, {"model": MODEL, "input": "count me"})
    text = http.get("/metrics").text
    for name in (
        'embedsearch_http_requests_total{method="POST",route="/v1/embeddings",status="200"}',
        "embedsearch_tokens_embedded_total",
        "embedsearch_batch_size_bucket",
        "embedsearch_queue_depth",
        "embedsearch_http_request_seconds_bucket",
    ):
        assert name in text
