"""embedsearch as a LangChain retriever (``pip install 'embedsearch[langchain]'``).

retriever = EmbedsearchRetriever(base_url="http://127.0.0.1:8000", k=4)
documents = retriever.invoke("how do glaciers move?")
"""

from __future__ import annotations

from typing import Any

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # an optional extra: say how to get it
    raise ImportError(
        "The LangChain retriever needs langchain-core: pip install 'embedsearch[langchain]'."
    ) from exc

from app.client import DEFAULT_URL, AsyncClient, Client, SearchHit, hit_metadata


class EmbedsearchRetriever(BaseRetriever):
    """Documents from ``POST /api/search``: one per hit, its matched chunk as the content."""

    base_url: str = DEFAULT_URL
    api_key: str | None = None
    collection: str = "default"
    mode: str = "hybrid"
    k: int = 4
    group_by: str = "document"
    filters: dict[str, Any] | None = None
    min_score: float | None = None

    def _options(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "mode": self.mode,
            "k": self.k,
            "group_by": self.group_by,
            "filters": self.filters,
            "min_score": self.min_score,
        }

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        with Client(self.base_url, self.api_key) as client:
            page = client.search(query, **self._options())
        return [_document(hit) for hit in page.hits]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        async with AsyncClient(self.base_url, self.api_key) as client:
            page = await client.search(query, **self._options())
        return [_document(hit) for hit in page.hits]


def _document(hit: SearchHit) -> Document:
    return Document(page_content=hit.chunk.text, metadata=hit_metadata(hit), id=str(hit.chunk.id))
