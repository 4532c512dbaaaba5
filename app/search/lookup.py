"""Read-only lookups search needs beyond the Store's methods: chunk owners, filters, summaries."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from app.errors import BadRequest
from app.store.database import Document, Store

_SUMMARY = (
    "id, collection_id, title, source_name, source_type, size, content_hash, external_id, "
    "metadata, chunk_count, created_at, updated_at"
)

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class Filters:
    """Which documents may match: all given conditions hold (an empty filter allows all)."""

    document_ids: tuple[int, ...] = ()
    source_types: tuple[str, ...] = ()
    metadata: dict[str, Scalar] = field(default_factory=dict)

    def __bool__(self) -> bool:
        """Whether any condition is set."""
        return bool(self.document_ids or self.source_types or self.metadata)


def _ids(ids: Iterable[int]) -> str:
    """Ids as a JSON array, for ``json_each`` (no limit on their number, unlike ``IN (?, ...)``)."""
    return json.dumps([int(i) for i in ids])


def chunk_documents(store: Store, chunk_ids: Iterable[int]) -> dict[int, int]:
    """The document id of each of these chunks (missing chunks are left out)."""
    rows = store._rows(
        "SELECT id, document_id FROM chunks WHERE id IN (SELECT value FROM json_each(?))",
        [_ids(chunk_ids)],
    )
    return {row["id"]: row["document_id"] for row in rows}


def matching_documents(store: Store, collection_id: int, filters: Filters) -> list[int]:
    """Ids of the collection's documents that pass ``filters``."""
    sql = "SELECT id FROM documents WHERE collection_id = ?"
    params: list[Any] = [collection_id]
    if filters.document_ids:
        sql += " AND id IN (SELECT value FROM json_each(?))"
        params.append(_ids(filters.document_ids))
    if filters.source_types:
        sql += " AND source_type IN (SELECT value FROM json_each(?))"
        params.append(json.dumps(list(filters.source_types)))
    for key, value in filters.metadata.items():
        if value is not None and not isinstance(value, str | int | float | bool):
            raise BadRequest(
                f"Metadata filter '{key}' must be a string, number, boolean or null.",
                param="filters.metadata",
            )
        # json_each matches top-level keys whatever characters they hold (a JSON path would not).
        sql += (
            " AND EXISTS (SELECT 1 FROM json_each(documents.metadata) AS m "
            "WHERE m.key = ? AND m.value IS ?)"
        )
        params += [key, value]
    return [row["id"] for row in store._rows(sql, params)]


def document_chunks(store: Store, document_ids: Iterable[int]) -> list[int]:
    """Ids of every chunk of these documents."""
    rows = store._rows(
        "SELECT id FROM chunks WHERE document_id IN (SELECT value FROM json_each(?))",
        [_ids(document_ids)],
    )
    return [row["id"] for row in rows]


def document_summaries(store: Store, document_ids: Iterable[int]) -> dict[int, Document]:
    """These documents without their text, keyed by id."""
    rows = store._rows(
        f"SELECT {_SUMMARY} FROM documents WHERE id IN (SELECT value FROM json_each(?))",
        [_ids(document_ids)],
    )
    return {
        row["id"]: Document(**(row | {"metadata": json.loads(row["metadata"])})) for row in rows
    }
