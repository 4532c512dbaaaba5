"""embedsearch as a LlamaIndex retriever (``pip install 'embedsearch[llamaindex]'``).

retriever = EmbedsearchRetriever(base_url="http://127.0.0.1:8000", k=4)
nodes = retriever.retrieve("how do glaciers move?")
"""

from __future__ import annotations

from typing import Any

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as exc:  # an optional extra: say how to get it
    raise ImportError(
        "The LlamaIndex retriever needs llama-index-core: pip install 'embedsearch[llamaindex]'."
    ) from exc

from app.client import DEFAULT_URL, AsyncClient, Client, SearchHit, hit_metadata


class EmbedsearchRetriever(BaseRetriever):
    """Nodes from ``POST /api/search``: one per hit, its matched chunk as the text."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        collection: str = "default",
        mode: str = "hybrid",
        k: int = 4,
        group_by: str = "document",
        filters: dict[str, Any] | None = None,
        min_score: float | None = None,
    ) -> None:
        super().__init__()
        self.base_url, self.api_key = base_url, api_key
        self.options: dict[str, Any] = {
            "collection": collection,
            "mode": mode,
            "k": k,
            "group_by": group_by,
            "filters": filters,
            "min_score": min_score,
        }

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        with Client(self.base_url, self.api_key) as client:
            page = client.search(query_bundle.query_str, **self.options)
        return [_node(hit) for hit in page.hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        async with AsyncClient(self.base_url, self.api_key) as client:
            page = await client.search(query_bundle.query_str, **self.options)
        return [_node(hit) for hit in page.hits]


def _node(hit: SearchHit) -> NodeWithScore:
    node = TextNode(text=hit.chunk.text, id_=str(hit.chunk.id), metadata=hit_metadata(hit))
    return NodeWithScore(node=node, score=hit.score)
