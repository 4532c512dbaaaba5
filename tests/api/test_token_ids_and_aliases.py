"""Token-id input read as OpenAI cl100k_base ids (or the model's own), and the built-in OpenAI
model names, in-process with the fake encoder."""

from __future__ import annotations

import numpy as np
import pytest

from app.embeddings.models import OPENAI_MODELS
from app.embeddings.token_ids import openai_vocabulary
from tests.support.api import assert_error

MODEL = "all-MiniLM-L6-v2"
TEXT = "The cat sat on the mat"
CL100K = [791, 8415, 7731, 389, 279, 5634]  # what LangChain sends for TEXT


def embed(client, body: dict) -> dict:
    response = client.post("/v1/embeddings", json={"model": MODEL, **body})
    assert response.status_code == 200, response.text
    return response.json()


def vector(body: dict) -> np.ndarray:
    return np.array(body["data"][0]["embedding"])


def test_cl100k_ids_are_the_vocabulary_of_the_packaged_encoding() -> None:
    assert openai_vocabulary().encode(TEXT) == CL100K


def test_openai_ids_embed_like_their_text(client) -> None:
    text = embed(client, {"input": TEXT})
    ids = embed(client, {"input": CL100K})
    assert np.allclose(vector(ids), vector(text), atol=1e-6)
    assert ids["usage"] == {"prompt_tokens": len(CL100K), "total_tokens": len(CL100K)}
    many = embed(client, {"input": [CL100K, CL100K[:2]]})
    assert np.allclose(vector(many), vector(text), atol=1e-6)
    assert many["usage"]["prompt_tokens"] == len(CL100K) + 2


def test_ids_split_inside_a_character_still_embed(client) -> None:
    ids = openai_vocabulary().encode("naïve café 東京")
    assert len(embed(client, {"input": ids})["data"]) == 1


@pytest.mark.parametrize("token", [100256, 100300, 99_999_999, -1])
def test_id_outside_cl100k_names_the_setting(client, token: int) -> None:
    r = client.post("/v1/embeddings", json={"model": MODEL, "input": [[1, 2], [3, token]]})
    error = assert_error(r, 400, "input")
    assert error["code"] == "invalid_token_id"
    assert f"input[1] has token id {token}" in error["message"]
    assert "EMBEDSEARCH_TOKEN_IDS=openai" in error["message"]
    assert "check_embedding_ctx_length=False" in error["message"]


def test_model_setting_reads_the_models_own_ids(make_client) -> None:
    client = make_client(token_ids="model")
    text = embed(client, {"input": "hello world"})
    ids = embed(client, {"input": [7592, 2088]})  # bert-base-uncased ids of "hello world"
    assert np.allclose(vector(ids), vector(text), atol=1e-6)
    assert ids["usage"]["prompt_tokens"] == 2
    r = client.post("/v1/embeddings", json={"model": MODEL, "input": [30522]})
    error = assert_error(r, 400, "input")
    assert error["code"] == "invalid_token_id"
    assert "EMBEDSEARCH_TOKEN_IDS=model" in error["message"]


def test_openai_names_are_aliases_of_the_default_model(client) -> None:
    cards = {card["id"]: card for card in client.get("/v1/models").json()["data"]}
    assert list(cards)[0] == MODEL and cards[MODEL]["root"] == MODEL
    for name in OPENAI_MODELS:
        assert cards[name]["root"] == MODEL
        body = embed(client, {"model": name, "input": "x"})
        assert body["model"] == MODEL
    assert client.get("/v1/models/text-embedding-3-large").json()["root"] == MODEL


def test_unknown_model_stays_404(client) -> None:
    r = client.post("/v1/embeddings", json={"model": "text-embedding-4", "input": "x"})
    assert assert_error(r, 404, "model")["code"] == "model_not_found"


def test_openai_aliases_turn_off(make_client) -> None:
    client = make_client(openai_aliases=False)
    r = client.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "x"})
    assert_error(r, 404, "model")
    assert [c["id"] for c in client.get("/v1/models").json()["data"]] == [
        MODEL,
        f"sentence-transformers/{MODEL}",
    ]


def test_configured_aliases_add_to_the_builtin_ones(make_client) -> None:
    client = make_client(model_aliases={"text-embedding-3-small": MODEL, "mini": MODEL})
    names = [c["id"] for c in client.get("/v1/models").json()["data"]]
    assert set(OPENAI_MODELS) | {"mini"} <= set(names)
    assert embed(client, {"model": "mini", "input": "x"})["model"] == MODEL
