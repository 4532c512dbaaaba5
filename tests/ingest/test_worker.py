"""Jobs any replica can run: a worker that dies mid-job is replaced by another, which finishes
the job without storing anything twice."""

from __future__ import annotations

import time

import numpy as np
import pytest

from app.index.faiss import FaissFiles
from app.index.indexes import Indexes
from app.ingest import jobs
from app.ingest.extract import Extracted
from app.ingest.jobs import Ingestor
from app.ingest.sources import Source
from app.ingest.worker import JobWorker
from app.priority import MAX_NICE, PER_THREAD, thread_nice
from app.store.database import Store
from tests.support.fakes import FakeEmbedder, FakeEncoder

ENCODER = FakeEncoder()


class Died(BaseException):
    """The replica stops dead: no exception handler of the app runs."""


class DyingEmbedder(FakeEmbedder):
    """Embeds ``calls`` groups, then dies."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls = calls

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls -= 1
        if self.calls < 0:
            raise Died
        return super().embed(texts)


class NiceEmbedder(FakeEmbedder):
    """Notes the nice value of each thread it embeds on."""

    def __init__(self) -> None:
        super().__init__()
        self.nice: set[int] = set()

    def embed(self, texts: list[str]) -> np.ndarray:
        self.nice.add(thread_nice())
        return super().embed(texts)


def replica(database_url: str, embedder: FakeEmbedder, name: str, nice: int = 0) -> JobWorker:
    store = Store(database_url, pool_size=2)
    ingestor = Ingestor(store, Indexes(store, FaissFiles(None)), embedder, encoder=lambda: ENCODER)
    return JobWorker(store, ingestor, name=name, lease_seconds=1.0, poll_seconds=0.05, nice=nice)


def documents(n: int) -> list[Source]:
    records = [
        Extracted(f"Doc {i}", f"document number {i} about topic {i}", "json") for i in range(n)
    ]
    return [Source("request.json", records)]


def test_a_job_of_a_dead_replica_is_finished_by_another_without_duplicates(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "BATCH_CHUNKS", 4)  # many small batches: the death comes mid-job
    dying = replica(database_url, DyingEmbedder(calls=3), "dying")
    healthy = replica(database_url, FakeEmbedder(), "healthy")
    job = dying.submit("notes", documents(20))
    with pytest.raises(Died):
        dying.run_once()
    half = healthy.store.get_job(job.id)
    assert (half.state, half.worker) == ("embedding", "dying")
    stored_before = healthy.store.list_documents()[1]
    assert 0 < stored_before < 20
    assert healthy.run_once() is None  # the dead replica's lease still runs
    time.sleep(1.1)  # now it has lapsed
    finished = healthy.run_once()
    assert finished is not None
    assert (finished.state, finished.worker, finished.attempts) == ("done", "healthy", 2)
    assert (finished.result["added"], finished.result["duplicate"]) == (20, 0)
    assert len(finished.result["files"][0]["documents"]) == 20
    store = healthy.store
    collection = store.get_collection("notes")
    assert (collection.documents, collection.chunks) == (20, 20)
    ids = store._tuples("SELECT count(*), count(DISTINCT content_hash) FROM documents")[0]
    assert ids == (20, 20)
    for worker in (dying, healthy):
        worker.store.close()


def test_the_worker_thread_runs_jobs_queued_by_another_replica(
    database_url: str,
) -> None:
    queuing = replica(database_url, FakeEmbedder(), "queuing")
    embedder = NiceEmbedder()
    running = replica(database_url, embedder, "running", nice=2)
    running.start()
    try:
        job = queuing.submit("notes", documents(3))
        deadline = time.monotonic() + 10
        while (done := queuing.store.get_job(job.id)).state != "done":
            assert time.monotonic() < deadline, done
            time.sleep(0.05)
        assert done.worker == "running" and done.result["added"] == 3
        if PER_THREAD:  # ingestion ran below the requests' priority
            assert embedder.nice == {min(MAX_NICE, thread_nice() + 2)}
    finally:
        running.stop()
        for worker in (queuing, running):
            worker.store.close()


def test_stopping_hands_the_running_job_back_for_another_worker(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "BATCH_CHUNKS", 4)
    stopping = replica(database_url, FakeEmbedder(), "stopping")
    other = replica(database_url, FakeEmbedder(), "other")
    original = stopping.ingestor.embedder.embed

    def embed_then_stop(texts: list[str]) -> np.ndarray:
        stopping.ingestor.stopping.set()  # the server is asked to stop during the first batch
        return original(texts)

    monkeypatch.setattr(stopping.ingestor.embedder, "embed", embed_then_stop)
    job = stopping.submit("notes", documents(20))
    stopping.run_once()
    handed_back = other.store.get_job(job.id)
    assert handed_back.state == "embedding" and handed_back.lease_until == 0
    finished = other.run_once()  # at once: no lease to wait for
    assert finished is not None and (finished.state, finished.worker) == ("done", "other")
    assert finished.result["added"] == 20
    assert other.store.get_collection("notes").documents == 20
    for worker in (stopping, other):
        worker.store.close()
