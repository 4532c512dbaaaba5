"""Ingestion jobs: extracted documents are deduplicated, chunked, embedded and stored.

Jobs run one at a time on a background thread, in the order they came. Each document is stored
in one SQLite transaction and then added to the vector index; the index file is saved as the job
goes and at its end. A crash between the two leaves SQLite ahead of the index, and start-up
brings the index back up to date from the stored vectors.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.embeddings.backends import compatible_backends
from app.errors import AppError, Conflict, RateLimited, ServiceUnavailable
from app.ingest.chunking import Chunk, chunk_text
from app.ingest.embedder import Embedder
from app.ingest.extract import Extracted
from app.store.database import Store
from app.store.indexes import Indexes
from app.store.records import ChunkRecord, Collection, Job

log = logging.getLogger("embedsearch.ingest")

BATCH_CHUNKS = 256  # chunks per embedding call: big enough to keep the model's batches full
SAVE_EVERY = 2.0  # seconds between index saves during a job; saving is O(index size)
REPORT_EVERY = 0.5  # seconds between progress writes within a batch (so a crash lists the stored)


@dataclass
class Source:
    """One uploaded file (or JSON body): its extracted documents, or why it failed, and what
    became of them."""

    name: str
    documents: list[Extracted] = field(default_factory=list)
    error: str | None = None
    added: int = 0
    replaced: int = 0
    duplicate: int = 0
    document_ids: list[int] = field(default_factory=list)

    @property
    def status(self) -> str:
        """failed, replaced, added or duplicate: what happened to the file as a whole."""
        if self.error:
            return "failed"
        if self.replaced:
            return "replaced"
        if self.added:
            return "added"
        return "duplicate" if self.duplicate else "queued"

    def summary(self) -> dict[str, Any]:
        """The file's outcome as JSON."""
        return {
            "name": self.name,
            "status": self.status,
            "added": self.added,
            "replaced": self.replaced,
            "duplicate": self.duplicate,
            "documents": self.document_ids,
            "error": self.error,
        }


@dataclass
class _Pending:
    source: Source
    document: Extracted
    chunks: list[Chunk]
    content_hash: str
    replace_id: int | None


Batch = list[tuple[_Pending, int, int]]  # (document, first chunk, end) in one embedding call


class Ingestor:
    """Runs ingestion jobs against a store, its indexes and an embedder."""

    def __init__(
        self,
        store: Store,
        indexes: Indexes,
        embedder: Embedder,
        tokenizer: Callable[[], Any],
        *,
        chunk_tokens: int = 200,
        chunk_overlap: int = 40,
        max_inputs: int = BATCH_CHUNKS,
    ) -> None:
        self.store = store
        self.indexes = indexes
        self.embedder = embedder
        self.tokenizer = tokenizer  # called when a job runs: the model may still be loading
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self.batch_chunks = min(BATCH_CHUNKS, max_inputs)  # within the embeddings API's cap
        self._stopping = threading.Event()
        self._runner = ThreadPoolExecutor(1, thread_name_prefix="embedsearch-ingest")

    def submit(self, collection: str, sources: list[Source]) -> tuple[Job, Future[Job]]:
        """Queue a job; returns it and a future that resolves when it ends."""
        job = self.store.create_job(collection, total=0)
        return job, self._runner.submit(self.run, job.id, collection, sources)

    def shutdown(self) -> None:
        """Finish the running job and drop queued ones (they are marked failed at next start)."""
        self._stopping.set()
        self._runner.shutdown(wait=True, cancel_futures=True)

    def run(self, job_id: str, collection: str, sources: list[Source]) -> Job:
        """Run one job to the end; a failing document fails alone, with its reason."""
        try:
            return self._run(job_id, collection, sources)
        except Exception as exc:  # the job fails, with its reason; the server carries on
            log.exception("Ingestion job %s failed", job_id)
            message = exc.message if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
            return self.store.update_job(job_id, state="failed", error=message)

    def _run(self, job_id: str, collection: str, sources: list[Source]) -> Job:
        self.store.update_job(job_id, state="extracting")
        pending = list(self._plan(collection, sources))
        total = sum(len(p.chunks) for p in pending)
        self.store.update_job(job_id, state="embedding", total=total, result=_summary(sources))
        done = 0
        target: Collection | None = None
        saved = reported = time.monotonic()
        vectors: dict[int, list[np.ndarray]] = {}  # a document's vectors until all are in
        for batch, embedded in self._embedded(_batches(pending, self.batch_chunks)):
            if target is None:
                target = self._collection(collection, embedded.shape[1])
            offset = 0
            for item, first, end in batch:
                vectors.setdefault(id(item), []).append(embedded[offset : offset + end - first])
                offset += end - first
                if end == len(item.chunks):
                    self._store(target, item, np.concatenate(vectors.pop(id(item))))
                    if time.monotonic() - reported > REPORT_EVERY:  # so a crash lists it
                        self.store.update_job(job_id, done=done + offset, result=_summary(sources))
                        reported = time.monotonic()
            done += offset
            if time.monotonic() - saved > SAVE_EVERY:
                self.indexes.save(target.id)
                saved = time.monotonic()
            self.store.update_job(job_id, done=done, result=_summary(sources))
            reported = time.monotonic()
        if target is not None:
            self.indexes.save(target.id)
        return self.store.update_job(job_id, state="done", done=done, result=_summary(sources))

    def _collection(self, name: str, dimensions: int) -> Collection:
        """The target collection; Conflict if its vectors came from an incompatible backend."""
        backend = self.embedder.backend
        target = self.store.ensure_collection(name, self.embedder.model, dimensions, backend)
        if not compatible_backends(target.backend, backend):
            raise Conflict(
                f"Collection '{name}' was embedded with the {target.backend} backend; its "
                f"vectors would not be comparable with {backend}'s. Use another collection."
            )
        return target

    def _plan(self, collection: str, sources: list[Source]) -> Iterator[_Pending]:
        """Chunk every new document; count duplicates; find the documents being replaced."""
        existing = _existing_collection(self.store, collection)
        tokenizer = self.tokenizer()
        seen: set[str] = set()
        for source in sources:
            for document in source.documents:
                digest = hashlib.sha256(document.text.encode()).hexdigest()
                if digest in seen or (
                    existing and self.store.find_document(existing.id, content_hash=digest)
                ):
                    source.duplicate += 1
                    continue
                seen.add(digest)
                chunks = chunk_text(
                    document.text,
                    tokenizer,
                    max_tokens=self.chunk_tokens,
                    overlap=self.chunk_overlap,
                    sections=document.sections,
                )
                replace = existing and self._replaced(existing.id, source, document)
                yield _Pending(source, document, chunks, digest, replace.id if replace else None)

    def _replaced(self, collection_id: int, source: Source, document: Extracted) -> Any:
        if document.external_id:
            return self.store.find_document(collection_id, external_id=document.external_id)
        if document.source_type != "json":  # a file's name identifies it; a record's does not
            return self.store.find_document(collection_id, source_name=source.name)
        return None

    def _embedded(self, batches: Iterable[Batch]) -> Iterator[tuple[Batch, np.ndarray]]:
        """Embed batch after batch, the next one while the caller stores the last."""
        with ThreadPoolExecutor(1, thread_name_prefix="embedsearch-embed") as pool:
            previous: tuple[Batch, Future[np.ndarray]] | None = None
            for batch in batches:
                texts = [c.embed_text for item, lo, hi in batch for c in item.chunks[lo:hi]]
                current = (batch, pool.submit(self._embed, texts))
                if previous:
                    yield previous[0], previous[1].result()
                previous = current
            if previous:
                yield previous[0], previous[1].result()

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Vectors for ``texts``; while the model's queue is full, wait for room (back-pressure).

        What ingestion accepted must not fail because interactive requests filled the queue.
        """
        pause = 0.05
        while True:
            try:
                return self.embedder.embed(texts)
            except RateLimited:
                if self._stopping.wait(pause):
                    raise ServiceUnavailable("The server is shutting down.") from None
                pause = min(pause * 2, 1.0)

    def _store(self, target: Collection, item: _Pending, vectors: np.ndarray) -> None:
        document = item.document
        fields = {
            "title": document.title,
            "source_name": item.source.name,
            "source_type": document.source_type,
            "size": len(document.text.encode()),
            "content_hash": item.content_hash,
            "external_id": document.external_id,
            "metadata": document.metadata,
            "text": document.text,
        }
        records = [
            ChunkRecord(i, c.text, c.start, c.end, c.token_count, c.section or None)
            for i, c in enumerate(item.chunks)
        ]
        added = self.store.add_document(target.id, fields, records, vectors, item.replace_id)
        if added.removed_ids:
            self.indexes.remove(target.id, np.array(added.removed_ids, dtype=np.int64))
        self.indexes.add(target.id, np.array(added.chunk_ids, dtype=np.int64), vectors)
        if item.replace_id:
            item.source.replaced += 1
        else:
            item.source.added += 1
        item.source.document_ids.append(added.document_id)


def _existing_collection(store: Store, name: str) -> Collection | None:
    return next((c for c in store.list_collections() if c.name == name), None)


def _batches(pending: list[_Pending], size: int) -> Iterator[Batch]:
    """Batches of at most ``size`` chunks, in order; a document's chunks may span many batches.

    So no embedding call grows with a document's size.
    """
    batch: Batch = []
    room = size
    for item in pending:
        first = 0
        while first < len(item.chunks):
            end = min(len(item.chunks), first + room)
            batch.append((item, first, end))
            room -= end - first
            first = end
            if not room:
                yield batch
                batch, room = [], size
    if batch:
        yield batch


def _summary(sources: list[Source]) -> dict[str, Any]:
    files = [source.summary() for source in sources]
    totals = {key: sum(f[key] for f in files) for key in ("added", "replaced", "duplicate")}
    return {**totals, "failed": sum(1 for f in files if f["error"]), "files": files}
