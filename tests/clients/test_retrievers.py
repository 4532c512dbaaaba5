"""embedsearch as a retriever: the typed client (sync and async) and the LangChain and LlamaIndex
retrievers against the live server, finding the right documents."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.documents import Document

from app.client import AsyncClient, Client, EmbedsearchError
from app.integrations.langchain import EmbedsearchRetriever as LangChainRetriever
from app.integrations.llamaindex import EmbedsearchRetriever as LlamaIndexRetriever
from tests.support.api import API_KEY

pytestmark = pytest.mark.model
COLLECTION = "retrievers"
RECORDS = [
    {
        "external_id": "glacier",
        "text": "Glaciers are rivers of ice that grind valleys into "
        "mountains as they creep downhill.",
        "metadata": {"topic": "earth", "year": 2019},
    },
    {
        "external_id": "violin",
        "text": "A violin has four strings tuned in fifths and is played with a bow.",
        "metadata": {"topic": "music", "year": 2021},
    },
    {
        "external_id": "bread",
        "text": "Sourdough bread rises slowly thanks to wild yeast in its starter.",
        "metadata": {"topic": "food", "year": 2023},
    },
]


@pytest.fixture(scope="module")
def server(live_server) -> str:
    """The live server with RECORDS in their own collection."""
    url = live_server[0]
    with Client(url, API_KEY) as client:
        job = client.add_documents(RECORDS, collection=COLLECTION)
    assert job["state"] == "done", job
    return url


def test_client_search_and_documents(server: str) -> None:
    with Client(server, API_KEY) as client:
        page = client.search("stringed instrument played with a bow", collection=COLLECTION)
        assert page.hits[0].document.external_id == "violin"
        assert page.hits[0].similarity is not None and page.hits[0].similarity > 0.3
        newer = client.search(
            "stringed instrument",
            collection=COLLECTION,
            filters={"metadata": {"year": {"$gte": 2022}}},
        )
        assert [hit.document.external_id for hit in newer.hits] == ["bread"]
        vector = client.search(vector=[0.0] * 383 + [1.0], collection=COLLECTION, k=3)
        assert len(vector.hits) == 3
        strict = client.search("violin", collection=COLLECTION, min_score=0.99)
        assert strict.hits == [] and strict.total == 0
        document = client.get_external("glacier", collection=COLLECTION)
        assert document["text"].startswith("Glaciers")
        with pytest.raises(EmbedsearchError) as info:
            client.search("x", collection=COLLECTION, mode="fuzzy")
        assert info.value.status == 400 and info.value.param == "mode"
        with pytest.raises(EmbedsearchError) as info:
            client.get_external("nope", collection=COLLECTION)
        assert info.value.status == 404


def test_async_client(server: str) -> None:
    async def run() -> list[str | None]:
        async with AsyncClient(server, API_KEY) as client:
            page = await client.search("wild yeast", collection=COLLECTION, k=1)
            return [hit.document.external_id for hit in page.hits]

    assert asyncio.run(run()) == ["bread"]


def test_langchain_retriever(server: str) -> None:
    retriever = LangChainRetriever(base_url=server, api_key=API_KEY, collection=COLLECTION, k=2)
    documents = retriever.invoke("ice carving valleys")
    assert isinstance(documents[0], Document) and len(documents) == 2
    assert documents[0].metadata["external_id"] == "glacier"
    assert documents[0].metadata["topic"] == "earth" and "Glaciers" in documents[0].page_content
    filtered = LangChainRetriever(
        base_url=server,
        api_key=API_KEY,
        collection=COLLECTION,
        filters={"metadata": {"topic": {"$in": ["food", "music"]}}},
    )
    found = asyncio.run(filtered.ainvoke("ice carving valleys"))
    assert {d.metadata["external_id"] for d in found} == {"violin", "bread"}


def test_llamaindex_retriever(server: str) -> None:
    retriever = LlamaIndexRetriever(server, API_KEY, collection=COLLECTION, k=1, mode="semantic")
    [node] = retriever.retrieve("baking with a starter")
    assert node.node.metadata["external_id"] == "bread" and node.score > 0.3
    found = asyncio.run(retriever.aretrieve("music with strings"))
    assert found[0].node.metadata["external_id"] == "violin"
