"""SIGKILL in the middle of a large ingest: nothing acknowledged is lost, nothing half-written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.store.database import Store
from bench.server import running_server

pytestmark = pytest.mark.model
CORPUS = Path(__file__).resolve().parent.parent.parent / "shared/data/scifact/corpus.jsonl"


def corpus(n: int) -> bytes:
    lines = []
    with CORPUS.open() as f:
        for line, _ in zip(f, range(n), strict=False):
            record = json.loads(line)
            record["text"] = f"{record['title']} {record['text']}"
            lines.append(json.dumps(record))
    return "\n".join(lines).encode()


def test_sigkill_during_ingest(tmp_path: Path) -> None:
    with running_server(tmp_path) as (url, proc, _):
        r = httpx.post(f"{url}/api/documents", files={"files": ("scifact.jsonl", corpus(600))})
        job_id = r.json()["id"]
        acknowledged: list[int] = []
        deadline = time.monotonic() + 300
        while len(acknowledged) < 100 and time.monotonic() < deadline:
            job = httpx.get(f"{url}/api/jobs/{job_id}").json()
            acknowledged = job["documents"]
            time.sleep(0.05)
        assert job["state"] == "embedding", job["state"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with running_server(tmp_path) as (url, _, log):
        job = httpx.get(f"{url}/api/jobs/{job_id}").json()
        assert job["state"] == "failed" and "Interrupted" in job["error"]
        for doc_id in acknowledged:
            assert httpx.get(f"{url}/api/documents/{doc_id}").status_code == 200
        stored = httpx.get(f"{url}/api/collections").json()["data"][0]
        assert stored["documents"] >= len(acknowledged)
    env = {**os.environ, "EMBEDSEARCH_DATA_DIR": str(tmp_path / "data")}
    verify = subprocess.run(
        [sys.executable, "-m", "app", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0 and "default: ok" in verify.stdout, verify.stdout + verify.stderr
    store = Store(tmp_path / "data" / "embedsearch.db")
    orphans = store.db.execute(
        "SELECT count(*) FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)"
    ).fetchone()[0]
    store.close()
    assert orphans == 0
