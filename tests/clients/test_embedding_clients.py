"""Each client library, with its quick-start settings pointed at the server's /v1, gets the same
vectors as the openai client (cosine >= 0.99): LangChain, LlamaIndex, Haystack and LiteLLM."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from types import ModuleType

import httpx
import numpy as np
import pytest
from haystack import Document
from haystack.components.embedders import OpenAIDocumentEmbedder, OpenAITextEmbedder
from haystack.utils import Secret
from langchain_openai import OpenAIEmbeddings
from llama_index.embeddings.openai import OpenAIEmbedding
from llama_index.embeddings.openai_like import OpenAILikeEmbedding

from tests.support.api import API_KEY
from tests.support.clients import MODEL, TEXTS, assert_close

pytestmark = pytest.mark.model


@pytest.mark.parametrize("model", [None, MODEL])
def test_langchain_openai_embeddings(
    base_url: str, reference: np.ndarray, model: str | None
) -> None:
    # The default path tokenises with tiktoken and sends cl100k_base token ids.
    options = {"model": model} if model else {}
    embeddings = OpenAIEmbeddings(base_url=base_url, api_key=API_KEY, **options)
    assert_close(embeddings.embed_documents(TEXTS), reference)
    assert_close([embeddings.embed_query(text) for text in TEXTS], reference)


def test_langchain_async(base_url: str, reference: np.ndarray) -> None:
    async def embed() -> list[list[float]]:
        # Our own HTTP client, closed inside the event loop: LangChain leaves its own open.
        async with httpx.AsyncClient() as http:
            embeddings = OpenAIEmbeddings(
                base_url=base_url, api_key=API_KEY, http_async_client=http
            )
            return await embeddings.aembed_documents(TEXTS)

    assert_close(asyncio.run(embed()), reference)


def test_llamaindex_openai_embedding(base_url: str, reference: np.ndarray) -> None:
    embedding = OpenAIEmbedding(api_base=base_url, api_key=API_KEY)  # text-embedding-ada-002
    assert_close(embedding.get_text_embedding_batch(TEXTS), reference)
    assert_close([embedding.get_query_embedding(text) for text in TEXTS], reference)


def test_llamaindex_openai_like_embedding(base_url: str, reference: np.ndarray) -> None:
    embedding = OpenAILikeEmbedding(model_name=MODEL, api_base=base_url, api_key=API_KEY)
    assert_close(embedding.get_text_embedding_batch(TEXTS), reference)


def test_haystack_embedders(base_url: str, reference: np.ndarray) -> None:
    key = Secret.from_token(API_KEY)
    text = OpenAITextEmbedder(api_key=key, api_base_url=base_url)  # text-embedding-3-small
    assert_close([text.run(t)["embedding"] for t in TEXTS], reference)
    documents = OpenAIDocumentEmbedder(api_key=key, api_base_url=base_url)
    embedded = documents.run([Document(content=t) for t in TEXTS])["documents"]
    assert_close([d.embedding for d in embedded], reference)


@pytest.fixture(scope="module")
def litellm() -> Iterator[ModuleType]:
    """LiteLLM, imported once the offline settings are in place; its cached clients closed after."""
    import litellm

    yield litellm
    cache = litellm.in_memory_llm_clients_cache
    for client in list(cache.cache_dict.values()):  # it keeps its HTTP clients open for reuse
        close = getattr(client, "close", None)
        if callable(close) and not inspect.iscoroutinefunction(close):
            close()
    cache.flush_cache()


@pytest.mark.parametrize("model", ["openai/text-embedding-3-small", f"openai/{MODEL}"])
def test_litellm_embedding(
    litellm: ModuleType, base_url: str, reference: np.ndarray, model: str
) -> None:
    response = litellm.embedding(model=model, input=TEXTS, api_base=base_url, api_key=API_KEY)
    assert_close([item["embedding"] for item in response.data], reference)
