"""SIGKILL during an ingest, an index save or a delete: nothing acknowledged is lost, nothing
half-written is visible, and ``verify`` finds the indexes matching SQLite after a restart."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.live import (
    assert_consistent,
    assert_searchable,
    ingest,
    notes,
    text_records,
    upload,
)
from tests.support.server import running_server

pytestmark = pytest.mark.model

# Loaded as ``sitecustomize`` by a server under test, so app code stays as it ships.
PAUSE_HOOK = '''
"""Once CRASH_TEST_CONTROL/pause exists, an index save writing a file whose name ends with that
file's text stops after writing its temporary file, before the rename, for the test to kill."""
import os
import time
from pathlib import Path

import app.index.faiss as index

control = Path(os.environ["CRASH_TEST_CONTROL"])
atomic_write = index._atomic_write


def paused_atomic_write(path, write):
    def write_then_pause(tmp):
        write(tmp)
        pause = control / "pause"
        if pause.exists() and str(path).endswith(pause.read_text()):
            (control / "paused").write_text(tmp)
            time.sleep(600)

    atomic_write(path, write_then_pause)


index._atomic_write = paused_atomic_write
'''


def corpus(n: int) -> bytes:
    """A JSON Lines file of n abstract-sized records (about 300 tokens each, as in SciFact), made
    here so the test needs no outside data set."""
    rng = random.Random(7)
    records = (
        {"_id": str(i), "title": f"Record {i}", "text": " ".join(notes(rng, str(i), 20))}
        for i in range(n)
    )
    return "\n".join(json.dumps(record) for record in records).encode()


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL the server: no shutdown code runs."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


# About 2 chunks a record: three embedding groups of 256 chunks, and the kill comes once the
# first is stored.
CORPUS = 300


def test_sigkill_during_ingest_resumes_the_job_after_restart(tmp_path: Path) -> None:
    env = {"EMBEDSEARCH_JOB_LEASE_SECONDS": "2"}  # the dead process's claim lapses soon
    with running_server(tmp_path, env) as (url, proc, _):
        r = httpx.post(f"{url}/api/documents", files={"files": ("corpus.jsonl", corpus(CORPUS))})
        job_id = r.json()["id"]
        acknowledged: list[int] = []
        deadline = time.monotonic() + 300
        while len(acknowledged) < 100 and time.monotonic() < deadline:
            job = httpx.get(f"{url}/api/jobs/{job_id}").json()
            acknowledged = job["documents"]
            time.sleep(0.05)
        assert job["state"] == "embedding", job["state"]
        kill(proc)
    with running_server(tmp_path, env) as (url, _, log):
        deadline = time.monotonic() + 300
        while (job := httpx.get(f"{url}/api/jobs/{job_id}").json())["state"] not in (
            "done",
            "failed",
        ):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        # The restarted server took the job over and finished it, storing nothing twice.
        assert (job["state"], job["attempts"], job["result"]["failed"]) == ("done", 2, 0), job
        for doc_id in acknowledged:
            assert httpx.get(f"{url}/api/documents/{doc_id}").status_code == 200
        # The job still lists what it stored before the crash, beside what it stored after.
        assert set(acknowledged) <= set(job["documents"]) and len(job["documents"]) == CORPUS
        stored = httpx.get(f"{url}/api/collections").json()["data"][0]
        assert stored["documents"] == CORPUS
        assert job["result"]["added"] + job["result"]["duplicate"] == CORPUS
    assert_consistent(tmp_path / "data")


def pausing_server_env(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A control directory and the environment that loads PAUSE_HOOK into the server."""
    hook, control = tmp_path / "hook", tmp_path / "control"
    hook.mkdir()
    control.mkdir()
    (hook / "sitecustomize.py").write_text(PAUSE_HOOK)
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH")) if p)
    return control, {"PYTHONPATH": path, "CRASH_TEST_CONTROL": str(control)}


def pause_saves(control: Path, suffix: str | None) -> None:
    """Make index saves of files ending with ``suffix`` stop before their rename (None: don't)."""
    for name in ("pause", "paused"):
        (control / name).unlink(missing_ok=True)
    if suffix:
        (control / "pause").write_text(suffix)


def wait_paused(control: Path) -> Path:
    """Wait until a save has written its temporary file and stopped; returns that file."""
    deadline = time.monotonic() + 60
    while not (control / "paused").exists():
        assert time.monotonic() < deadline, "no index save reached the pause"
        time.sleep(0.05)
    return Path((control / "paused").read_text())


# Each step is killed in an index save, after the temporary file is written, before the rename
# of the index file or of its sidecar (the index file is renamed first, so the file on disk is
# then new and only its recorded version stale).
SAVE_KILLS = [("upload", ".faiss"), ("delete", ".faiss"), ("delete", ".json")]


def test_sigkill_during_index_save(tmp_path: Path) -> None:
    """Uploads and deletes killed mid-save leave the old file whole; restart catches up."""
    control, env = pausing_server_env(tmp_path)
    rng = random.Random(7)
    present: dict[int, str] = {}
    gone: dict[int, str] = {}
    for step, (operation, paused_file) in enumerate(SAVE_KILLS):
        with running_server(tmp_path, env) as (url, proc, log):
            if step == 0:
                present = ingest(url, notes(rng, "a", 6))
                deleted = min(present)
                assert httpx.delete(f"{url}/api/documents/{deleted}").status_code == 200
                gone[deleted] = present.pop(deleted)
            else:
                # The kill left the old file whole (updated, not rebuilt as an unreadable one
                # would be) and behind SQLite, and start-up caught it up.
                assert "was updated from the database" in log.read_text()
            assert_searchable(url, present, gone)
            pause_saves(control, paused_file)
            if operation == "upload":
                present |= upload_and_kill_in_save(url, proc, control, notes(rng, f"b{step}", 3))
            else:
                victim = max(present)
                delete_and_kill_in_save(url, proc, control, victim)
                # Its SQLite commit comes before the save: the delete stands, whatever the
                # index file still holds.
                gone[victim] = present.pop(victim)
        pause_saves(control, None)
    with running_server(tmp_path, env) as (url, _, log):
        assert "was updated from the database" in log.read_text()
        assert_searchable(url, present, gone)
    assert_consistent(tmp_path / "data")


def upload_and_kill_in_save(
    url: str, proc: subprocess.Popen, control: Path, texts: list[str]
) -> dict[int, str]:
    """Upload; kill the server in the job's index save; return what the job acknowledged."""
    job_id = upload(url, text_records(texts), wait=False)["id"]
    temp = wait_paused(control)
    job = httpx.get(f"{url}/api/jobs/{job_id}").json()
    # Normally the final save, with every document acknowledged; on a slow machine it may be
    # an earlier one (every SAVE_EVERY seconds), before the job acknowledged any.
    assert job["state"] == "embedding" and temp.stat().st_size > 0, job
    kill(proc)
    return dict(zip(job["documents"], texts, strict=False))


def delete_and_kill_in_save(url: str, proc: subprocess.Popen, control: Path, doc_id: int) -> None:
    """Send a DELETE and kill the server in its index save, so it is never answered."""
    answers: list[object] = []

    def delete() -> None:
        try:
            answers.append(httpx.delete(f"{url}/api/documents/{doc_id}", timeout=60).status_code)
        except httpx.TransportError:
            answers.append("no answer")

    request = threading.Thread(target=delete)
    request.start()
    wait_paused(control)
    kill(proc)
    request.join()
    assert answers == ["no answer"]


@dataclass
class Ledger:
    """What the server acknowledged: documents added (not deleted since) and deleted."""

    present: dict[int, str] = field(default_factory=dict)
    gone: dict[int, str] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)


def churn(url: str, ledger: Ledger, rng: random.Random, tag: str) -> None:
    """Upload small batches and delete documents until the server dies."""
    with httpx.Client(base_url=url, timeout=60) as http:
        for batch in itertools.count():
            texts = notes(rng, f"{tag}{batch}", 2)
            body = {"documents": [{"text": text} for text in texts]}
            try:
                response = http.post("/api/documents?wait=true", json=body)
                if response.status_code != 200 or response.json()["state"] != "done":
                    ledger.unexpected.append(response.text)
                    return
                ledger.present |= dict(zip(response.json()["documents"], texts, strict=True))
                victim = rng.choice(sorted(ledger.present))
                # Unknown until answered: a delete cut short may or may not have happened.
                text = ledger.present.pop(victim)
                response = http.delete(f"/api/documents/{victim}")
            except httpx.TransportError:
                return  # the server was killed
            if response.status_code != 200:
                ledger.unexpected.append(response.text)
                return
            ledger.gone[victim] = text


def test_sigkill_at_random_moments_of_uploads_and_deletes(tmp_path: Path) -> None:
    """Kill the server at seeded random moments of a stream of uploads and deletes, restart
    and check, three times over."""
    delays, texts = random.Random(11), random.Random(12)  # one per thread: both stay seeded
    ledger = Ledger()
    for round_ in range(3):
        with running_server(tmp_path) as (url, proc, _):
            assert_searchable(url, ledger.present, ledger.gone)
            writer = threading.Thread(target=churn, args=(url, ledger, texts, f"r{round_}-"))
            writer.start()
            time.sleep(delays.uniform(0.5, 2.0))
            kill(proc)
            writer.join()
            assert ledger.unexpected == []
    with running_server(tmp_path) as (url, _, _):
        assert_searchable(url, ledger.present, ledger.gone)
    assert len(ledger.gone) >= 3  # the writer did get work acknowledged between kills
    assert_consistent(tmp_path / "data")
