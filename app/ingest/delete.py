"""Deleting a document: its row and chunks from the store, its vectors from the index."""

from __future__ import annotations

from app.index.indexes import Indexes
from app.store.database import Store


def delete_document(store: Store, indexes: Indexes, document_id: int) -> None:
    """Delete a document, its chunks and their vectors; NotFound if there is no such document."""
    collection_id = store.get_document(document_id, with_text=False).collection_id
    store.delete_document(document_id)
    indexes.save(collection_id)  # follows the database: the removal is recorded there
