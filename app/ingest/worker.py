"""The job worker of one replica: it claims stored jobs (from any replica) and runs them.

A job is claimed with a lease that a heartbeat renews while the job runs; if the replica dies,
the lease runs out and another replica's worker takes the job over. The worker polls the
database every ``poll_seconds`` for jobs other replicas queued, and is woken at once by jobs
queued here.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from app.ingest.jobs import Ingestor
from app.ingest.sources import Source, sources_from_payload, sources_payload
from app.priority import lower_thread_priority
from app.settings import DEFAULTS
from app.store.database import Store
from app.store.records import Job

log = logging.getLogger("embedsearch.ingest")


def worker_name() -> str:
    """A name for this replica's worker, unique across restarts: host, process, random."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class JobWorker:
    """Claims and runs ingestion jobs on one background thread."""

    def __init__(
        self,
        store: Store,
        ingestor: Ingestor,
        *,
        name: str | None = None,
        lease_seconds: float = DEFAULTS.job_lease_seconds,
        poll_seconds: float = DEFAULTS.job_poll_seconds,
        max_attempts: int = DEFAULTS.job_max_attempts,
        removals_keep_seconds: float = DEFAULTS.removals_keep_seconds,
        nice: int = DEFAULTS.background_nice,
    ) -> None:
        self.store = store
        self.ingestor = ingestor
        self.name = name or worker_name()
        ingestor.worker = self.name
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.max_attempts = max_attempts
        self.removals_keep_seconds = removals_keep_seconds
        self.nice = nice
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, collection: str, sources: list[Source]) -> Job:
        """Store a job for whichever worker claims it first (most likely this one)."""
        job = self.store.create_job(collection, sources_payload(sources))
        self._wake.set()
        return job

    def start(self) -> None:
        """Start claiming jobs in the background."""
        self._thread = threading.Thread(target=self._loop, name="embedsearch-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the running job's current batch; the job and queued ones stay for any
        replica (this one after a restart) to run."""
        self._stop.set()
        self.ingestor.stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def run_once(self) -> Job | None:
        """Claim one job and run it to the end; None when there was none to claim."""
        job = self.store.claim_job(self.name, self.lease_seconds, self.max_attempts)
        if job is None:
            return None
        if job.attempts > 1:
            log.warning("Taking over ingestion job %s (attempt %d)", job.id, job.attempts)
        payload = self.store.job_payload(job.id) or []
        sources = sources_from_payload(payload, job.result)
        beating = threading.Event()
        heart = threading.Thread(target=self._heartbeat, args=(job.id, beating), daemon=True)
        heart.start()
        try:
            return self.ingestor.run(job.id, job.collection, sources) or job
        finally:
            beating.set()
            heart.join()

    def _heartbeat(self, job_id: str, done: threading.Event) -> None:
        """Renew the lease every third of it until the job ends or another worker holds it."""
        while not done.wait(self.lease_seconds / 3):
            try:
                if not self.store.renew_lease(job_id, self.name, self.lease_seconds):
                    return
            except Exception:  # the database may be back by the next beat
                log.exception("Could not renew the lease on job %s", job_id)

    def _loop(self) -> None:
        lower_thread_priority(self.nice)  # and the planning thread each job starts from here
        pruned = 0.0
        while not self._stop.is_set():
            self._wake.clear()  # before claiming: a job queued meanwhile wakes the next wait
            try:
                while not self._stop.is_set() and self.run_once() is not None:
                    pass
                if time.monotonic() - pruned > 3600:
                    self.store.prune_removals(self.removals_keep_seconds)
                    pruned = time.monotonic()
            except Exception:  # e.g. the database is unreachable: try again at the next poll
                log.exception("The job worker could not claim a job")
            self._wake.wait(self.poll_seconds)
