"""Concurrent writers and readers: threads and processes against one server while the CLI compacts
and verifies its database, and processes sharing one SQLite database through Store. Nobody sees
"database is locked" or a 500, and what was acknowledged is exactly what is stored."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.store.database import Store
from app.store.records import ChunkRecord
from tests.support.live import assert_consistent, assert_searchable, assert_sqlite_consistent, notes
from tests.support.server import running_server

SPAWN = get_context("spawn")  # fork is unsafe (and warns) in a process running threads


def session(url: str, tag: str, rounds: int = 4) -> dict[str, Any]:
    """Upload, search, list and delete through the API, in a thread or a process of its own.

    Returns the documents it added and did not delete ({id: text}), those it deleted, and every
    response that was not what it should have been.
    """
    rng = random.Random(tag)
    kept: dict[int, str] = {}
    deleted: dict[int, str] = {}
    problems: list[str] = []
    with httpx.Client(base_url=url, timeout=120) as http:
        for n in range(rounds):
            texts = notes(rng, f"{tag}.{n}", 2)
            body = {"documents": [{"text": text} for text in texts]}
            response = http.post("/api/documents?wait=true", json=body)
            if response.status_code != 200 or response.json()["state"] != "done":
                problems.append(f"upload: {response.status_code} {response.text}")
                continue
            kept |= dict(zip(response.json()["documents"], texts, strict=True))
            query = {"query": rng.choice(list(kept.values())), "mode": "semantic", "k": 5}
            for response in (
                http.post("/api/search", json=query),
                http.get("/api/documents", params={"limit": 5}),
            ):
                if response.status_code != 200:
                    problems.append(f"{response.url}: {response.status_code} {response.text}")
            if n % 2:
                victim = rng.choice(sorted(kept))
                response = http.delete(f"/api/documents/{victim}")
                if response.status_code != 200:
                    problems.append(f"delete: {response.status_code} {response.text}")
                    continue
                deleted[victim] = kept.pop(victim)
    return {"kept": kept, "deleted": deleted, "problems": problems}


def run_cli(data_dir: Path, command: str) -> tuple[str, int, str]:
    """Run an offline CLI command on the data directory; returns (command, exit code, output)."""
    env = {**os.environ, "EMBEDSEARCH_DATA_DIR": str(data_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "app", command], env=env, capture_output=True, text=True, timeout=120
    )
    return command, done.returncode, done.stdout + done.stderr


def cli_until(stop: threading.Event, data_dir: Path) -> list[tuple[str, int, str]]:
    """Compact and verify the live database, over and over, until ``stop`` is set."""
    runs = []
    while not stop.is_set():
        runs += [run_cli(data_dir, "compact"), run_cli(data_dir, "verify")]
    return runs


@pytest.mark.model
def test_clients_in_threads_and_processes_with_cli_alongside(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(tmp_path) as (url, _, log):
        stop = threading.Event()
        with (
            ProcessPoolExecutor(2, mp_context=SPAWN) as processes,
            ThreadPoolExecutor(3) as threads,
        ):
            cli = threads.submit(cli_until, stop, data_dir)
            sessions = [processes.submit(session, url, f"p{i}") for i in range(2)]
            sessions += [threads.submit(session, url, f"t{i}") for i in range(2)]
            results = [future.result() for future in sessions]
            stop.set()
            cli_runs = cli.result()
        assert [problem for result in results for problem in result["problems"]] == []
        for command, code, output in cli_runs:
            assert "locked" not in output and "Traceback" not in output, output
            # verify may see the index file lag SQLite while a job runs (it is saved at the
            # job's end); compact must always succeed.
            assert code == 0 or (command == "verify" and "MISMATCH" in output), output
        kept = {i: text for result in results for i, text in result["kept"].items()}
        deleted = {i: text for result in results for i, text in result["deleted"].items()}
        assert len(kept) == 4 * 4 * 2 - len(deleted) and len(deleted) == 4 * 2
        assert httpx.get(f"{url}/api/collections").json()["data"][0]["documents"] == len(kept)
        assert_searchable(url, kept, deleted)
    server_log = log.read_text()
    for sign in ("database is locked", "Traceback", "500 Internal Server Error"):
        assert sign not in server_log
    assert_consistent(data_dir)


def store_writer(path: Path, tag: int, count: int = 30) -> tuple[dict[int, str], list[int]]:
    """In a process of its own: add and delete documents and record jobs through Store, and
    (writer 0) compact as it goes. Returns what it kept ({id: text}) and the ids it deleted."""
    store = Store(path)
    collection = store.ensure_collection("shared", "fake", 8, "faiss")
    rng = np.random.default_rng(tag)
    kept: dict[int, str] = {}
    deleted: list[int] = []
    for n in range(count):
        text = f"writer {tag} document {n} " * 20
        fields = {"title": text[:20], "source_name": f"{tag}.txt", "source_type": "text/plain"}
        fields |= {"size": len(text), "content_hash": text, "text": text}
        chunk = ChunkRecord(0, text, 0, len(text), 40)
        vector = rng.standard_normal((1, 8)).astype(np.float32)
        document_id = store.add_document(collection.id, fields, [chunk], vector).document_id
        job = store.create_job("shared")
        store.update_job(job.id, state="done", done=1)
        if n % 3 == 0:
            store.delete_document(document_id)
            deleted.append(document_id)
        else:
            kept[document_id] = text
        if tag == 0 and n % 10 == 5:
            store.compact()
    store.close()
    return kept, deleted


def test_processes_write_one_database_through_store(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with ProcessPoolExecutor(4, mp_context=SPAWN) as pool:
        results = list(pool.map(store_writer, [path] * 4, range(4)))
    kept = {i: text for result, _ in results for i, text in result.items()}
    deleted = [i for _, result in results for i in result]
    store = Store(path)
    try:
        collection = store.get_collection("shared")
        assert (collection.documents, collection.chunks) == (len(kept), len(kept)) == (80, 80)
        assert collection.version == 4 * 30 + len(deleted)  # every add and delete, none lost
        documents, _ = store.list_documents(limit=1000)
        assert {d.id: store.get_document(d.id).text for d in documents} == kept
        jobs = store.db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
        assert jobs == [("done", 4 * 30)]
    finally:
        store.close()
    assert_sqlite_consistent(path)


def open_and_close(path: Path, ready: Any) -> str | None:
    """Open a Store once every process is ready to; returns the error, if any."""
    ready.wait()
    try:
        Store(path).close()
    except Exception as error:  # reported to the test, which shows them all
        return repr(error)
    return None


def test_processes_open_a_new_database_at_once(tmp_path: Path) -> None:
    """Processes creating the same database at the same moment must not trip over each other."""
    processes = 6
    with SPAWN.Manager() as manager, ProcessPoolExecutor(processes, mp_context=SPAWN) as pool:
        errors = []
        for trial in range(20):
            ready = manager.Barrier(processes, timeout=60)
            path = tmp_path / f"new-{trial}.db"
            errors += pool.map(open_and_close, [path] * processes, [ready] * processes)
    assert [error for error in errors if error] == []


def disk_size(data_dir: Path) -> int:
    """Bytes the database takes on disk, with its WAL and shared-memory files."""
    return sum(p.stat().st_size for p in data_dir.glob("embedsearch.db*"))


def test_compact_frees_the_space_of_deleted_documents(make_client, settings) -> None:
    client = make_client()
    texts = [f"Document {n}: " + "words that take up some room " * 60 for n in range(150)]
    job = client.post("/api/documents?wait=true", json={"documents": [{"text": t} for t in texts]})
    ids = job.json()["documents"]
    for doc_id in ids[5:]:
        assert client.delete(f"/api/documents/{doc_id}").status_code == 200
    client.__exit__(None, None, None)  # the server stops; deleted rows leave free pages behind
    before = disk_size(settings.data_dir)
    _, code, output = run_cli(settings.data_dir, "compact")
    assert code == 0, output
    assert disk_size(settings.data_dir) < before / 4, output
    client = make_client()
    for doc_id, text in zip(ids[:5], texts, strict=False):
        assert client.get(f"/api/documents/{doc_id}").json()["text"] == text
    assert_consistent(settings.data_dir)
