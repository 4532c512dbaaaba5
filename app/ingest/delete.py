"""Deleting a document: its row and chunks from the store, its vectors from the index."""

from __future__ import annotations

import numpy as np

from app.index.indexes import Indexes
from app.store.database import Store


def delete_document(store: Store, indexes: Indexes, document_id: int) -> None:
    """Delete a document, its chunks and their vectors; NotFound if there is no such document."""
    collection_id = store.get_document(document_id, with_text=False).collection_id
    removed = store.delete_document(document_id)
    indexes.remove(collection_id, np.array(removed, dtype=np.int64))
    indexes.save(collection_id)
