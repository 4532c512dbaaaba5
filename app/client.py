"""A small typed client for embedsearch's document and search API (sync and async, on httpx).

from app.client import Client

with Client("http://127.0.0.1:8000", api_key="...") as client:
    client.add_documents([{"text": "The cat sat on the mat.", "external_id": "cat"}])
    for hit in client.search("where is the cat?", k=3).hits:
        print(hit.score, hit.similarity, hit.document.title, hit.chunk.text)
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
Record = TypeVar("Record", "DocumentRef", "ChunkRef")


class EmbedsearchError(Exception):
    """An error answer of the API: its status and OpenAI-shaped fields."""

    def __init__(self, status: int, message: str, param: str | None, code: str | None) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message, self.param, self.code = status, message, param, code


@dataclass(frozen=True)
class DocumentRef:
    """A document as a hit shows it (without its text)."""

    id: int
    title: str | None
    external_id: str | None
    source_name: str | None
    source_type: str | None
    metadata: dict[str, Any]


@dataclass(frozen=True)
class ChunkRef:
    """The chunk a hit matched on, with its place in the document's text."""

    id: int
    seq: int
    text: str
    start: int
    end: int
    section: str | None = None


@dataclass(frozen=True)
class SearchHit:
    """One search hit: fused ``score``, raw cosine ``similarity`` (None in keyword mode)."""

    rank: int
    score: float
    similarity: float | None
    document: DocumentRef
    chunk: ChunkRef
    snippet: str


@dataclass(frozen=True)
class SearchPage:
    """One page of hits and the size of the whole ranking."""

    hits: list[SearchHit]
    total: int
    has_more: bool
    message: str | None = None


def hit_metadata(hit: SearchHit) -> dict[str, Any]:
    """A hit's document metadata with where it came from and how it scored (for retrievers)."""
    return {
        **hit.document.metadata,
        "document_id": hit.document.id,
        "external_id": hit.document.external_id,
        "title": hit.document.title,
        "source_name": hit.document.source_name,
        "chunk_id": hit.chunk.id,
        "score": hit.score,
        "similarity": hit.similarity,
    }


def search_body(
    query: str | None,
    vector: list[float] | None,
    filters: dict[str, Any] | None,
    **options: Any,
) -> dict[str, Any]:
    """The JSON body of ``POST /api/search``: given options only, so the server's defaults hold."""
    body = {"query": query, "vector": vector, "filters": filters, **options}
    return {key: value for key, value in body.items() if value is not None}


def parse_page(body: dict[str, Any]) -> SearchPage:
    """A SearchPage from the API's JSON."""
    hits = [
        SearchHit(
            rank=hit["rank"],
            score=hit["score"],
            similarity=hit.get("similarity"),
            document=_known(DocumentRef, hit["document"]),
            chunk=_known(ChunkRef, hit["chunk"]),
            snippet=hit["snippet"],
        )
        for hit in body["hits"]
    ]
    return SearchPage(hits, body["total"], body["has_more"], body.get("message"))


def _known(cls: type[Record], body: dict[str, Any]) -> Record:
    """A dataclass from the fields of ``body`` it knows: newer servers may send more."""
    return cls(**{f.name: body[f.name] for f in fields(cls) if f.name in body})


def _answer(response: httpx.Response) -> Any:
    """The response's JSON; EmbedsearchError for an error status."""
    if response.is_success:
        return response.json()
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        error = {"message": response.text}
    raise EmbedsearchError(
        response.status_code, error.get("message", ""), error.get("param"), error.get("code")
    )


def _client_options(base_url: str, api_key: str | None, timeout: float) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return {"base_url": base_url, "headers": headers, "timeout": timeout}


def _external(external_id: str) -> str:
    return f"/api/documents/external/{quote(external_id, safe='')}"


class Client:
    """Blocking client: search, neighbours, and documents by id or by your own external id."""

    def __init__(
        self, base_url: str = DEFAULT_URL, api_key: str | None = None, timeout: float = 120
    ) -> None:
        self.http = httpx.Client(**_client_options(base_url, api_key, timeout))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections."""
        self.http.close()

    def search(
        self,
        query: str | None = None,
        *,
        vector: list[float] | None = None,
        filters: dict[str, Any] | None = None,
        **options: Any,
    ) -> SearchPage:
        """Search by text or by a vector; options: mode, k, offset, collection, group_by,
        min_score."""
        body = search_body(query, vector, filters, **options)
        return parse_page(_answer(self.http.post("/api/search", json=body)))

    def add_documents(
        self, documents: list[dict[str, Any]], collection: str = "default"
    ) -> dict[str, Any]:
        """Upload JSON records (text, title, metadata, external_id); returns the finished job."""
        body = {"collection": collection, "documents": documents}
        return _answer(self.http.post("/api/documents", params={"wait": "true"}, json=body))

    def list_documents(self, collection: str = "default", **params: Any) -> dict[str, Any]:
        """A page of documents; params: limit, offset, filters (a JSON string)."""
        return _answer(self.http.get("/api/documents", params={"collection": collection, **params}))

    def get_document(self, document_id: int) -> dict[str, Any]:
        """A document with its text and chunks."""
        return _answer(self.http.get(f"/api/documents/{document_id}"))

    def delete_document(self, document_id: int) -> dict[str, Any]:
        """Delete a document by id."""
        return _answer(self.http.delete(f"/api/documents/{document_id}"))

    def get_external(self, external_id: str, collection: str = "default") -> dict[str, Any]:
        """A document by your external id."""
        params = {"collection": collection}
        return _answer(self.http.get(_external(external_id), params=params))

    def put_external(
        self, external_id: str, document: dict[str, Any], collection: str = "default"
    ) -> dict[str, Any]:
        """Create or replace the document with this external id (text, title, metadata)."""
        params = {"collection": collection}
        return _answer(self.http.put(_external(external_id), params=params, json=document))

    def delete_external(self, external_id: str, collection: str = "default") -> dict[str, Any]:
        """Delete the document with this external id."""
        params = {"collection": collection}
        return _answer(self.http.delete(_external(external_id), params=params))


class AsyncClient:
    """The same API without blocking the event loop."""

    def __init__(
        self, base_url: str = DEFAULT_URL, api_key: str | None = None, timeout: float = 120
    ) -> None:
        self.http = httpx.AsyncClient(**_client_options(base_url, api_key, timeout))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self.http.aclose()

    async def search(
        self,
        query: str | None = None,
        *,
        vector: list[float] | None = None,
        filters: dict[str, Any] | None = None,
        **options: Any,
    ) -> SearchPage:
        """Search by text or by a vector (see ``Client.search``)."""
        body = search_body(query, vector, filters, **options)
        return parse_page(_answer(await self.http.post("/api/search", json=body)))

    async def add_documents(
        self, documents: list[dict[str, Any]], collection: str = "default"
    ) -> dict[str, Any]:
        """Upload JSON records; returns the finished job."""
        body = {"collection": collection, "documents": documents}
        return _answer(await self.http.post("/api/documents", params={"wait": "true"}, json=body))

    async def get_external(self, external_id: str, collection: str = "default") -> dict[str, Any]:
        """A document by your external id."""
        params = {"collection": collection}
        return _answer(await self.http.get(_external(external_id), params=params))

    async def delete_external(
        self, external_id: str, collection: str = "default"
    ) -> dict[str, Any]:
        """Delete the document with this external id."""
        params = {"collection": collection}
        return _answer(await self.http.delete(_external(external_id), params=params))
