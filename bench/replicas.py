"""Ingestion throughput and search QPS with 1, 2 and 3 replicas on one PostgreSQL database
behind nginx, each replica pinned to its own core where the machine has one.

Replicas are started one after another; each round uploads the same documents (SciFact's first
``DOCS``, or generated notes without the data set) into a new collection, as ``JOBS`` jobs through
nginx, and times until every job is done (the replicas' workers share the jobs); then it searches
through nginx from ``CLIENTS`` threads for ``SEARCH_SECONDS``. Scaling efficiency is the
throughput with n replicas over n times that with one.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.runner import Row
from tests.support.live import notes
from tests.support.postgres import temporary_database, unavailable
from tests.support.replicas import NGINX, Replica, load_balancer, replica_env
from tests.support.server import running_server

DOCS, JOBS = 1000, 10
CLIENTS, SEARCH_SECONDS = 8, 15
QUERIES = ["glacier lantern", "copper falcon river", "violin ember", "canyon", "ember glacier"]


def corpus(n: int) -> list[dict]:
    """SciFact's first ``n`` documents as upload records, else ``n`` generated notes."""
    try:
        from bench import ingest

        return ingest.records(n)
    except Exception:  # the data set is optional
        return [{"text": t} for t in notes(random.Random(0), "bench", n)]


def pin(replica: Replica, core: int) -> None:
    """Pin every thread of the replica's process to one core (best effort)."""
    cores = os.cpu_count() or 1
    subprocess.run(
        ["taskset", "-a", "-p", "-c", str(core % cores), str(replica.proc.pid)],
        capture_output=True,
        check=False,
    )


def ingest_round(balancer: str, collection: str, docs: list[dict]) -> float:
    """Upload ``docs`` as JOBS jobs through nginx; seconds until every job is done."""
    size = -(-len(docs) // JOBS)
    start = time.perf_counter()
    jobs = []
    for i in range(0, len(docs), size):
        body = "\n".join(json.dumps(d) for d in docs[i : i + size]).encode()
        response = httpx.post(
            f"{balancer}/api/documents",
            files={"files": (f"part{i}.jsonl", body)},
            data={"collection": collection},
            timeout=300,
        )
        response.raise_for_status()
        jobs.append(response.json()["id"])
    with httpx.Client(base_url=balancer, timeout=60) as http:
        while any(
            http.get(f"/api/jobs/{j}").json()["state"] not in ("done", "failed") for j in jobs
        ):
            time.sleep(0.2)
    return time.perf_counter() - start


def search_qps(balancer: str, collection: str) -> float:
    """Hybrid searches per second through nginx from CLIENTS threads."""
    counts = [0] * CLIENTS
    stop = time.monotonic() + SEARCH_SECONDS

    def client(n: int) -> None:
        with httpx.Client(base_url=balancer, timeout=60) as http:
            while time.monotonic() < stop:
                query = QUERIES[counts[n] % len(QUERIES)]
                http.get("/api/search", params={"q": query, "collection": collection})
                counts[n] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / SEARCH_SECONDS


def run(quick: bool = False, workdir: Path | None = None) -> dict:
    """Docs/s and search QPS with 1, 2 and 3 replicas, and the scaling efficiency."""
    if reason := unavailable() or (None if NGINX else "nginx is not installed"):
        return {"skipped": reason}
    docs = corpus(200 if quick else DOCS)
    out: dict = {"documents": len(docs), "cores": os.cpu_count(), "rounds": {}}
    with tempfile.TemporaryDirectory() as tmp, temporary_database() as url, ExitStack() as stack:
        root, env, replicas = Path(tmp), replica_env(url), []
        for n in (1, 2, 3):
            workdir_n = root / f"replica-{n}"
            workdir_n.mkdir()
            base, proc, log = stack.enter_context(running_server(workdir_n, env, timeout=900))
            replicas.append(Replica(base, proc, log, workdir_n))
            pin(replicas[-1], n - 1)
            upstreams = [r.url.removeprefix("http://") for r in replicas]
            with load_balancer(root / f"nginx-{n}", upstreams) as balancer:
                seconds = ingest_round(balancer, f"round{n}", docs)
                qps = search_qps(balancer, f"round{n}")
            out["rounds"][n] = {"seconds": seconds, "docs_per_s": len(docs) / seconds, "qps": qps}
    one = out["rounds"][1]["docs_per_s"]
    for n, r in out["rounds"].items():
        r["efficiency"] = r["docs_per_s"] / (n * one)
    return out


def rows(result: dict) -> list[Row]:
    """Per replica count: docs/s, its ratio to one replica, efficiency, search QPS."""
    if "skipped" in result:
        return [Row(f"replicas: skipped ({result['skipped']})", None, "")]
    rounds = result["rounds"]
    out = []
    for n, r in rounds.items():
        out += [
            Row(
                f"ingest, {n} replica(s), {result['documents']} docs",
                r["docs_per_s"],
                "docs/s",
                digits=1,
            ),
            Row(
                f"ingest {n} replica(s) / 1 replica", r["docs_per_s"] / rounds[1]["docs_per_s"], "x"
            ),
            Row(
                f"scaling efficiency, {n} replica(s) on {result['cores']} cores",
                r["efficiency"],
                "",
            ),
            Row(f"hybrid search through nginx, {n} replica(s)", r["qps"], "QPS", digits=1),
        ]
    return out
