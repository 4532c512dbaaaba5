"""Jobs on both databases: payloads, claims with leases, takeover after a lapsed lease."""

from __future__ import annotations

import threading
import time

import pytest

from app.errors import NotFound
from app.store.database import Store
from app.store.jobs import LeaseLost
from app.store.migrations import migrate


def test_jobs_lifecycle(store: Store) -> None:
    job = store.create_job("notes", payload={"files": ["a"]})
    assert (job.state, job.total, job.done, job.error, job.result) == ("queued", 0, 0, None, None)
    assert store.job_payload(job.id) == {"files": ["a"]}
    job = store.update_job(job.id, state="done", done=3, result={"document_ids": [1, 2]})
    assert (job.state, job.done, job.result) == ("done", 3, {"document_ids": [1, 2]})
    assert store.get_job(job.id) == job
    assert store.job_payload(job.id) is None  # a finished job drops what it ingested
    assert store.job_ended(job.id)
    assert not store.job_ended(store.create_job("notes").id)
    with pytest.raises(NotFound):
        store.job_ended("nope")
    with pytest.raises(ValueError):
        store.update_job(job.id, state="exploded")
    with pytest.raises(TypeError):
        store.update_job(job.id, colour="red")
    with pytest.raises(NotFound):
        store.update_job("nope", done=1)


def test_the_payloads_migration_moves_what_unfinished_jobs_ingest(store: Store) -> None:
    queued = store.create_job("notes", payload={"files": ["a"]})
    with store.dialect.transaction() as conn:  # back to the schema before migration 5
        conn.execute("ALTER TABLE jobs ADD COLUMN payload TEXT")
        conn.execute("UPDATE jobs SET payload = (SELECT payload FROM job_payloads)")
        conn.execute("DROP TABLE job_payloads")
        conn.execute("DELETE FROM schema_migrations WHERE version = 5")
    assert migrate(store.dialect) == [5]
    assert store.job_payload(queued.id) == {"files": ["a"]}
    store.update_job(queued.id, state="done")
    assert store.job_payload(queued.id) is None


def test_claims_take_the_oldest_free_job_once(store: Store) -> None:
    first = store.create_job("a")
    time.sleep(0.002)  # jobs are taken in the order of their creation times (milliseconds)
    second = store.create_job("b")
    claimed = store.claim_job("replica-1", 30, 3)
    assert claimed is not None and (claimed.id, claimed.worker) == (first.id, "replica-1")
    assert claimed.attempts == 1 and claimed.lease_until > time.time() + 25
    other = store.claim_job("replica-2", 30, 3)
    assert other is not None and other.id == second.id
    assert store.claim_job("replica-3", 30, 3) is None


def test_a_lapsed_lease_lets_another_worker_take_over(store: Store) -> None:
    job = store.create_job("a")
    assert store.claim_job("dead", 0.2, 3) is not None
    assert store.claim_job("alive", 30, 3) is None  # the lease still runs
    time.sleep(0.3)
    taken = store.claim_job("alive", 30, 3)
    assert taken is not None and (taken.id, taken.worker, taken.attempts) == (job.id, "alive", 2)
    # The first worker, back from a pause, can no longer write to it, nor renew it.
    assert not store.renew_lease(job.id, "dead", 30)
    with pytest.raises(LeaseLost):
        store.update_job(job.id, worker="dead", done=1)
    assert store.renew_lease(job.id, "alive", 30)
    assert store.update_job(job.id, worker="alive", state="done").state == "done"


def test_a_job_interrupted_too_often_fails(store: Store) -> None:
    job = store.create_job("a", payload=[1])
    for _ in range(2):
        assert store.claim_job("w", 0, 2) is not None
    assert store.claim_job("w", 0, 2) is None
    failed = store.get_job(job.id)
    assert failed.state == "failed" and "Interrupted 2 times" in failed.error
    assert store.job_payload(job.id) is None


def test_concurrent_claims_never_share_a_job(store: Store) -> None:
    jobs = {store.create_job("a").id for _ in range(20)}
    claimed: list[str] = []
    lock = threading.Lock()

    def claim(worker: str) -> None:
        while (job := store.claim_job(worker, 30, 3)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=claim, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(jobs)
