"""Settings-dependent behaviour of the embeddings API, in-process with the fake encoder."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from tests.support.fakes import FakeEncoder

BODY = {"model": "all-MiniLM-L6-v2", "input": "hello"}


def test_open_without_keys(client) -> None:
    assert client.post("/v1/embeddings", json=BODY).status_code == 200


def test_body_over_limit_is_413(make_client) -> None:
    client = make_client(max_request_bytes=1000)
    r = client.post("/v1/embeddings", json={**BODY, "input": "x " * 2000})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"
    # streamed without a content-length, too
    chunks = (b'{"model": "all-MiniLM-L6-v2", "input": "' + b"y" * 500 for _ in range(4))
    r = client.post("/v1/embeddings", content=chunks, headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_no_truncation_setting_answers_in_openai_wording(make_client) -> None:
    client = make_client(truncate=False)
    r = client.post("/v1/embeddings", json={**BODY, "input": "word " * 300})
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("This model's maximum context length is 256")
    assert client.post("/v1/embeddings", json={**BODY, "input": "word " * 254}).status_code == 200


def test_tokens_per_request_limit(make_client) -> None:
    client = make_client(max_tokens_per_request=10)
    r = client.post("/v1/embeddings", json={**BODY, "input": ["one two three four five six"] * 2})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"


def test_inputs_per_request_limit(make_client) -> None:
    client = make_client(max_inputs_per_request=3)
    assert client.post("/v1/embeddings", json={**BODY, "input": ["a"] * 4}).status_code == 400


def test_full_queue_is_429_with_retry_after(make_client) -> None:
    gate = threading.Event()
    fake = FakeEncoder(delay=gate)
    client = make_client(fake, max_queued_inputs=4)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(client.post, "/v1/embeddings", json={**BODY, "input": ["a"] * 4})
        assert fake.entered.wait(5)  # the model is busy with the first request
        fake.entered.clear()
        second = pool.submit(client.post, "/v1/embeddings", json={**BODY, "input": ["b"] * 4})
        third = pool.submit(client.post, "/v1/embeddings", json={**BODY, "input": ["c"] * 4})
        refused = [r.result() for r in (second, third)]
        gate.set()
        assert first.result().status_code == 200
    statuses = sorted(r.status_code for r in refused)
    assert 429 in statuses
    r429 = next(r for r in refused if r.status_code == 429)
    assert r429.headers["retry-after"] == "1"
    assert r429.json()["error"]["type"] == "rate_limit_error"


def test_health_and_liveness(client) -> None:
    assert client.get("/health").json()["ready"] is True
    assert client.get("/health/live").json() == {"status": "ok"}


def test_unknown_route_and_method(client) -> None:
    assert client.get("/nope").json()["error"]["code"] == "not_found"
    r = client.get("/v1/embeddings")
    assert r.status_code == 405 and "error" in r.json()
