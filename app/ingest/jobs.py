"""Ingestion jobs: extracted documents are deduplicated, chunked, embedded and stored.

A job is stored with what it ingests (``app.ingest.sources``) and run by whichever replica's
worker claims it (``app.ingest.worker``). Each document is stored in one database transaction;
the vector index follows the database, and its file is saved as the job goes and at its end. A
job taken over from a replica that died skips the documents that replica already stored (same
content), so nothing is stored twice.

A document that cannot be chunked, embedded or stored fails alone: its file reports the reason
and the job carries on with the others.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.embeddings.backends import compatible_backends
from app.embeddings.encoder import Encoder
from app.errors import AppError, Conflict, RateLimited, Unprocessable
from app.index.indexes import Indexes
from app.ingest.chunking import Chunk, chunk_text
from app.ingest.embedder import Embedder
from app.ingest.extract import Extracted
from app.ingest.sources import Source, summary
from app.ingest.synced import remove_leftovers
from app.settings import DEFAULTS
from app.store.database import Store
from app.store.jobs import LeaseLost
from app.store.records import JOB_ENDED, ChunkRecord, Collection, Document, Job

log = logging.getLogger("embedsearch.ingest")

BATCH_CHUNKS = 256  # chunks per embedding call: big enough to keep the model's batches full
EMBED_AHEAD = 2  # embedding calls in flight at once
SAVE_EVERY = 2.0  # least seconds between index saves during a job; saving is O(index size)
# A save holds the index, so searches wait for it: the next waits 100x as long as the last took.
SAVE_SPACING = 100
REPORT_EVERY = 0.5  # seconds between progress writes within a batch (so a crash lists the stored)
NO_TEXT = "no text to index (it is empty, or only whitespace or invisible characters)"


class Stopped(Exception):
    """The server is stopping: leave the job for a worker to resume."""


class _Ahead:
    """The documents a plan yields, planned (deduplicated and chunked) on a thread of its own:
    chunking runs beside the model instead of before it. ``total`` counts the chunks so far.

    The plan updates its sources' counts (duplicates, failures) from that thread; the job's
    thread only reads them, for progress reports.
    """

    def __init__(self, plan: Iterator[_Pending]) -> None:
        self.total = 0
        self._items: queue.SimpleQueue[_Pending | BaseException | None] = queue.SimpleQueue()
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._fill, args=(plan,), name="embedsearch-plan", daemon=True
        )
        self._thread.start()

    def _fill(self, plan: Iterator[_Pending]) -> None:
        try:
            for item in plan:
                if self._closed.is_set():  # the job stopped: plan no further
                    return
                self.total += len(item.chunks)
                self._items.put(item)
        except BaseException as exc:  # raised again in the job's thread
            self._items.put(exc)
            return
        self._items.put(None)

    def __iter__(self) -> Iterator[_Pending]:
        while (item := self._items.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Stop planning (the job ended early); wait for the planner to notice."""
        self._closed.set()
        self._thread.join()


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
        encoder: Callable[[], Encoder],
        *,
        chunk_tokens: int = DEFAULTS.chunk_tokens,
        chunk_overlap: int = DEFAULTS.chunk_overlap,
        max_inputs: int = BATCH_CHUNKS,
        worker: str | None = None,
    ) -> None:
        self.store = store
        self.indexes = indexes
        self.embedder = embedder
        self.encoder = encoder  # called when a job runs: the model may still be loading
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self.batch_chunks = min(BATCH_CHUNKS, max_inputs)  # within the embeddings API's cap
        self.worker = worker  # the job's holder: its writes stop if another takes it over
        self.stopping = threading.Event()  # set at shutdown: the running job is handed back

    def run(self, job_id: str, collection: str, sources: list[Source]) -> Job | None:
        """Run one job to the end; a failing document fails alone, with its reason. None if
        another worker took the job over meanwhile (this one was too slow to renew its lease)."""
        try:
            return self._run(job_id, collection, sources)
        except LeaseLost:
            log.warning("Ingestion job %s was taken over by another worker", job_id)
            return None
        except Stopped:  # shutting down: any worker (this one after a restart) resumes the job
            log.warning("Ingestion job %s handed back unfinished: the server is stopping", job_id)
            self.store.update_job(job_id, worker=self.worker, result=summary(sources))
            self.store.release_job(job_id, self.worker or "")
            return None
        except Exception as exc:  # the job fails, with its reason; the server carries on
            log.exception("Ingestion job %s failed", job_id)
            return self._update(job_id, state="failed", error=_reason(exc))

    def _update(self, job_id: str, **fields: Any) -> Job:
        if self.stopping.is_set() and fields.get("state") not in JOB_ENDED:
            raise Stopped  # between batches: what is stored stays, the rest is resumed
        return self.store.update_job(job_id, worker=self.worker, **fields)

    def _run(self, job_id: str, collection: str, sources: list[Source]) -> Job:
        self._update(job_id, state="extracting")
        planned = _Ahead(self._plan(collection, sources))
        try:
            return self._ingest(job_id, collection, sources, planned)
        finally:
            planned.close()

    def _ingest(self, job_id: str, collection: str, sources: list[Source], planned: _Ahead) -> Job:
        """Embed and store the documents as they are planned; the job's total grows with them."""
        self._update(job_id, state="embedding", total=planned.total, result=summary(sources))
        done = 0
        target: Collection | None = None
        saved = reported = time.monotonic()
        save_every = SAVE_EVERY
        parts: dict[int, list[np.ndarray]] = {}  # a document's vectors until all are in
        failed: set[int] = set()  # documents one of whose batches failed
        for batch, results in self._embedded(_batches(planned, self.batch_chunks)):
            for (item, first, end), vectors in zip(batch, results, strict=True):
                done += end - first
                if id(item) in failed:
                    continue
                if isinstance(vectors, Exception):
                    item.source.fail(item.document, _reason(vectors))
                    failed.add(id(item))
                    parts.pop(id(item), None)
                    continue
                parts.setdefault(id(item), []).append(vectors)
                if end < len(item.chunks):
                    continue
                if target is None:
                    target = self._collection(collection, vectors.shape[1])
                self._store(target, item, np.concatenate(parts.pop(id(item))))
                if time.monotonic() - reported > REPORT_EVERY:  # so a crash lists it
                    self._update(job_id, done=done, total=planned.total, result=summary(sources))
                    reported = time.monotonic()
            if target is not None and time.monotonic() - saved > save_every:
                start = time.monotonic()
                self.indexes.save(target.id)
                saved = time.monotonic()
                save_every = max(SAVE_EVERY, SAVE_SPACING * (saved - start))
            self._update(job_id, done=done, total=planned.total, result=summary(sources))
            reported = time.monotonic()
        if target is not None:
            self.indexes.save(target.id)
        if existing := _existing_collection(self.store, collection):
            # A file that now holds fewer records than before leaves documents to delete.
            files = {
                s.path: {str(d.external_id) for d in s.documents}
                for s in sources
                if s.path and not s.error
            }
            remove_leftovers(self.store, self.indexes, existing.id, files)
        return self._update(
            job_id, state="done", done=done, total=planned.total, result=summary(sources)
        )

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
        encoder = self.encoder()
        if self.chunk_tokens > encoder.max_tokens:
            raise Unprocessable(
                f"Chunks of {self.chunk_tokens} tokens do not fit the model's window of "
                f"{encoder.max_tokens}: set EMBEDSEARCH_CHUNK_TOKENS to {encoder.max_tokens} "
                "or less."
            )
        seen: set[str] = set()
        for source in sources:
            for document in source.documents:
                digest = hashlib.sha256(document.text.encode()).hexdigest()
                if self._stored_earlier(existing, source, digest):
                    continue  # stored by an earlier attempt at this job, and counted then
                if self._unchanged(existing, document, digest, seen):
                    source.duplicate += 1
                    continue
                seen.add(digest)
                chunks = chunk_text(
                    document.text,
                    encoder.tokenizer,
                    max_tokens=self.chunk_tokens,
                    overlap=self.chunk_overlap,
                    sections=document.sections,
                    title=document.title if document.titled else "",
                )
                if not chunks:
                    source.fail(document, NO_TEXT)
                    continue
                replace = existing and self._replaced(existing.id, source, document)
                yield _Pending(source, document, chunks, digest, replace.id if replace else None)

    def _stored_earlier(self, existing: Collection | None, source: Source, digest: str) -> bool:
        """Whether an earlier attempt at this job (a replica that died) stored this text."""
        if existing is None or not source.document_ids:
            return False
        stored = self.store.find_document(existing.id, content_hash=digest)
        return stored is not None and stored.id in source.document_ids

    def _unchanged(
        self, existing: Collection | None, document: Extracted, digest: str, seen: set[str]
    ) -> bool:
        """Nothing to store: a document with an external id is unchanged if that id holds the
        same text and metadata; any other, if the collection (or this job) has its text."""
        if document.external_id:
            if existing is None:
                return False
            current = self.store.find_document(existing.id, external_id=document.external_id)
            return current is not None and (current.content_hash, current.metadata) == (
                digest,
                document.metadata,
            )
        return digest in seen or bool(
            existing and self.store.find_document(existing.id, content_hash=digest)
        )

    def _replaced(self, collection_id: int, source: Source, document: Extracted) -> Document | None:
        """The stored document this one replaces: same external id, or same file name."""
        if document.external_id:
            return self.store.find_document(collection_id, external_id=document.external_id)
        if document.source_type != "json":  # a file's name identifies it; a record's does not
            return self.store.find_document(collection_id, source_name=source.name)
        return None

    def _embedded(self, batches: Iterable[Batch]) -> Iterator[tuple[Batch, list[Embedding]]]:
        """Embed batches in order, ``EMBED_AHEAD`` calls at once: while the caller stores one
        batch and the next is tokenised, another is in the engine's queue, which never runs dry."""
        with ThreadPoolExecutor(EMBED_AHEAD, thread_name_prefix="embedsearch-embed") as pool:
            flight: deque[tuple[Batch, Future[list[Embedding]]]] = deque()
            for batch in batches:
                flight.append((batch, pool.submit(self._embed, batch)))
                if len(flight) == EMBED_AHEAD:
                    batch, future = flight.popleft()
                    yield batch, future.result()
            while flight:
                batch, future = flight.popleft()
                yield batch, future.result()

    def _embed(self, batch: Batch) -> list[Embedding]:
        """Vectors for each (document, chunks) part; where one call for the batch fails, one
        call per part, so that a document the embedder refuses fails alone."""
        try:
            vectors = self._embed_waiting(_texts(batch))
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
            log.warning("Embedding %d documents failed (%s); retrying one by one", len(batch), exc)
            return [result for part in batch for result in self._embed([part])]
        ends = np.cumsum([end - first for _, first, end in batch])[:-1]
        return list(np.split(vectors, ends))

    def _embed_waiting(self, texts: list[str]) -> np.ndarray:
        """Vectors for ``texts``; while the model's queue is full, wait for room (back-pressure).

        What ingestion accepted must not fail because interactive requests filled the queue.
        """
        pause = 0.05
        while True:  # the queue drains while the engine runs; once it stops it says so instead
            try:
                return self.embedder.embed(texts)
            except RateLimited:
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    def _store(self, target: Collection, item: _Pending, vectors: np.ndarray) -> None:
        """Store one document (the index follows the store); a failure fails only this document."""
        try:
            self._add(target, item, vectors)
        except Exception as exc:
            log.exception("Storing %r of %s failed", item.document.title, item.source.name)
            item.source.fail(item.document, _reason(exc))

    def _add(self, target: Collection, item: _Pending, vectors: np.ndarray) -> None:
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
        if added.replaced:
            item.source.replaced += 1
        else:
            item.source.added += 1
        item.source.document_ids.append(added.document_id)


Embedding = np.ndarray | Exception  # a document's vectors, or why embedding it failed


def _reason(exc: Exception) -> str:
    """What a user is told when ``exc`` stops a document or a job."""
    return exc.message if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"


def _texts(batch: Batch) -> list[str]:
    return [chunk.embed_text for item, first, end in batch for chunk in item.chunks[first:end]]


def _existing_collection(store: Store, name: str) -> Collection | None:
    return next((c for c in store.list_collections() if c.name == name), None)


def _batches(pending: Iterable[_Pending], size: int) -> Iterator[Batch]:
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
