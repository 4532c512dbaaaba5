"""Files kept in step with a folder: each document remembers its file's path and content hash.

A file uploaded with its path (relative to the folder being synced) gets that path as its
documents' external id, so uploading it again replaces them; its path and SHA-256 go into their
metadata, so a client can ask which files the collection already holds, and delete files by path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import numpy as np

from app.errors import BadRequest
from app.index.indexes import Indexes
from app.ingest.extract import Extracted
from app.store.database import Store

MAX_PATH_CHARS = 1024


def check_path(path: str) -> str:
    """A file's path relative to the synced folder: '/'-separated, no '..', no leading '/'."""
    parts = path.split("/")
    if len(path) > MAX_PATH_CHARS or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise BadRequest(
            f"Invalid path {path[:100]!r}: give each file's path relative to the synced folder, "
            f"with '/' between folders, no '.' or '..', at most {MAX_PATH_CHARS} characters.",
            param="paths",
        )
    return path


def tag_documents(documents: list[Extracted], path: str, data: bytes) -> None:
    """Mark a file's documents with its path (as their external id) and the file's hash."""
    sha256 = hashlib.sha256(data).hexdigest()
    for number, document in enumerate(documents, 1):
        # A file of records (JSON, JSON Lines) gets one id per record, in file order.
        document.external_id = f"{path}#{number}" if document.source_type == "json" else path
        document.metadata = {**document.metadata, "path": path, "file_sha256": sha256}


def list_files(store: Store, collection: str) -> list[dict[str, Any]]:
    """The files the collection holds: path, SHA-256 and document ids, sorted by path."""
    files: dict[str, dict[str, Any]] = {}
    for document_id, _, path, sha256 in store.file_documents(store.get_collection(collection).id):
        entry = files.setdefault(path, {"path": path, "sha256": sha256, "documents": []})
        entry["documents"].append(document_id)
    return [files[path] for path in sorted(files)]


def delete_files(store: Store, indexes: Indexes, collection: str, paths: Iterable[str]) -> int:
    """Delete the documents of these files (in one transaction); returns how many were deleted."""
    wanted = set(paths)
    collection_id = store.get_collection(collection).id
    ids = [row[0] for row in store.file_documents(collection_id) if row[2] in wanted]
    return _delete(store, indexes, ids)


def remove_leftovers(
    store: Store, indexes: Indexes, collection_id: int, files: dict[str, set[str]]
) -> int:
    """Delete documents of these files whose records are gone: ``files`` maps each path just
    uploaded to the external ids it holds now."""
    if not files:
        return 0
    stale = [
        row[0]
        for row in store.file_documents(collection_id)
        if row[2] in files and row[1] not in files[row[2]]
    ]
    return _delete(store, indexes, stale)


def _delete(store: Store, indexes: Indexes, document_ids: list[int]) -> int:
    """Delete documents in one transaction, then their vectors; returns how many."""
    if not document_ids:
        return 0
    for collection_id, chunk_ids in store.delete_documents(document_ids).items():
        indexes.remove(collection_id, np.array(chunk_ids, dtype=np.int64))
        indexes.save(collection_id)
    return len(document_ids)
