"""Three replicas on one PostgreSQL database behind nginx: uploads through nginx, one replica
killed (SIGKILL) while it holds a job; every acknowledged document ends up stored once and
searchable through every replica, and ``verify`` is clean on each."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.live import notes, text_records, upload
from tests.support.postgres import temporary_database
from tests.support.replicas import NGINX, Replica, replica_env, replica_set
from tests.support.server import running_server

pytestmark = pytest.mark.model

# Three model servers share the cores: short chunks in small embedding groups keep the model's
# work small, while each job (about 3 chunks a document) still spans several groups, so a replica
# can be killed after storing part of a job.
JOBS, PER_JOB = 3, 30
SMALL_WORK = {
    "EMBEDSEARCH_MAX_INPUTS_PER_REQUEST": "24",  # chunks per embedding group
    "EMBEDSEARCH_CHUNK_TOKENS": "64",
    "EMBEDSEARCH_CHUNK_OVERLAP": "8",
}


def documents(rng: random.Random, job: int) -> list[str]:
    """PER_JOB distinct documents of about 180 tokens."""
    return [" ".join(notes(rng, f"j{job}d{i}", 12)) for i in range(PER_JOB)]


def held_by(replicas: list[Replica], job: dict) -> Replica | None:
    """The replica whose worker holds this job (worker names carry the process id)."""
    return next((r for r in replicas if f"-{r.proc.pid}-" in (job["worker"] or "")), None)


def kill_a_replica_mid_job(balancer: str, replicas: list[Replica], jobs: list[str]) -> Replica:
    """SIGKILL the first replica seen holding a job it has partly stored; returns it."""
    deadline = time.monotonic() + 300
    with httpx.Client(base_url=balancer, timeout=30) as http:
        while time.monotonic() < deadline:
            for job_id in jobs:
                job = http.get(f"/api/jobs/{job_id}").json()
                victim = held_by(replicas, job)
                if victim and job["state"] == "embedding" and job["progress"]["done"] > 0:
                    os.kill(victim.proc.pid, signal.SIGKILL)
                    victim.proc.wait()
                    return victim
            time.sleep(0.02)
    raise AssertionError("no replica was seen in the middle of a job")


def wait_finished(balancer: str, jobs: list[str]) -> list[dict]:
    deadline = time.monotonic() + 600
    with httpx.Client(base_url=balancer, timeout=30) as http:
        while True:
            found = [http.get(f"/api/jobs/{job_id}").json() for job_id in jobs]
            if all(job["state"] in ("done", "failed") for job in found):
                return found
            assert time.monotonic() < deadline, found
            time.sleep(0.5)


def assert_every_document_found(url: str, firsts: dict[int, str]) -> None:
    """Each document's first chunk finds that document first (from the replica's FAISS index:
    the chunk's vector is the query's own)."""
    with httpx.Client(base_url=url, timeout=60) as http:
        for doc_id, chunk in firsts.items():
            body = {"query": chunk, "mode": "semantic", "k": 1}
            hits = http.post("/api/search", json=body).json()["hits"]
            assert hits and hits[0]["document"]["id"] == doc_id, (url, doc_id, hits)


def verify(env: dict[str, str], replica: Replica) -> None:
    environment = {**os.environ, **env, "EMBEDSEARCH_DATA_DIR": str(replica.root / "data")}
    result = subprocess.run(
        [sys.executable, "-m", "app", "verify"], env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0 and "MISMATCH" not in result.stdout, result.stdout + result.stderr


@pytest.mark.timeout(1200)  # three model servers starting on a shared 2-core machine
def test_replicas_behind_nginx_lose_nothing_when_one_is_killed(tmp_path) -> None:  # noqa: ANN001
    if NGINX is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx)")
    rng = random.Random(16)
    batches = [documents(rng, j) for j in range(JOBS)]
    with temporary_database() as url:
        env = replica_env(url, **SMALL_WORK)
        with replica_set(tmp_path, env, 3) as (balancer, replicas):
            jobs = [upload(balancer, text_records(b), wait=False)["id"] for b in batches]
            victim = kill_a_replica_mid_job(balancer, replicas, jobs)
            finished = wait_finished(balancer, jobs)
            assert all(job["state"] == "done" for job in finished), finished
            # A document stored just before the kill, before the job recorded it, is counted as
            # a duplicate by the replica that finishes the job: stored once either way.
            results = [job["result"] for job in finished]
            assert sum(r["added"] + r["duplicate"] for r in results) == JOBS * PER_JOB
            taken_over = [job for job in finished if job["attempts"] > 1]
            assert taken_over and all(held_by([victim], j) is None for j in taken_over)

            with httpx.Client(base_url=balancer, timeout=60) as http:
                listing = http.get("/api/documents", params={"limit": 1000}).json()
            assert listing["total"] == JOBS * PER_JOB  # nothing stored twice
            texts, firsts = set(), {}
            with httpx.Client(base_url=balancer, timeout=60) as http:
                for listed in listing["data"]:
                    document = http.get(f"/api/documents/{listed['id']}").json()
                    texts.add(document["text"])
                    firsts[document["id"]] = document["chunks"][0]["text"]
            assert texts == {text for batch in batches for text in batch}

            survivors = [r for r in replicas if r is not victim]
            for replica in survivors:
                assert_every_document_found(replica.url, firsts)
            with running_server(victim.root, env, timeout=600) as (restarted, _, _):
                assert_every_document_found(restarted, firsts)
        for replica in replicas:  # every replica has stopped (and saved its indexes)
            verify(env, replica)
