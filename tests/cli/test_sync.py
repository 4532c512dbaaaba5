"""``embedsearch sync`` against a real server: edits, deletions and unchanged files; --watch
picking up a new file and a deletion."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx

from tests.cli.conftest import CLI


def held(url: str, collection: str = "default") -> dict[str, str]:
    response = httpx.get(f"{url}/api/collections/{collection}/files")
    if response.status_code == 404:  # no collection yet
        return {}
    return {f["path"]: f["sha256"] for f in response.json()["data"]}


def jobs(served) -> int:
    return served.app.state.store.db.execute("SELECT count(*) FROM jobs").fetchone()[0]


def test_sync_after_edits_and_deletions(serve, cli, tmp_path: Path) -> None:
    served = serve()
    folder = tmp_path / "vault"
    (folder / "a").mkdir(parents=True)
    for name in ("one.md", "two.txt", "a/three.txt", "a/same.txt"):
        (folder / name).write_text(f"The note {name} about mountains.")
    (folder / "a/same.txt").write_text((folder / "two.txt").read_text())  # same text, two paths
    first = cli("sync", str(folder), "--url", served.url)
    assert first.returncode == 0, first.stderr
    assert "4 added" in first.stdout
    assert set(held(served.url)) == {"one.md", "two.txt", "a/three.txt", "a/same.txt"}

    (folder / "one.md").write_text("The first note, now about rivers.")
    (folder / "a/three.txt").unlink()
    (folder / "four.txt").write_text("A new note about deserts.")
    second = cli("ingest", str(folder), "--sync", "--url", served.url)
    assert second.returncode == 0, second.stderr
    for count in ("1 added", "1 replaced", "2 unchanged", "1 deleted", "0 failed"):
        assert count in second.stdout, second.stdout
    assert set(held(served.url)) == {"one.md", "two.txt", "a/same.txt", "four.txt"}
    hits = httpx.post(f"{served.url}/api/search", json={"query": "rivers", "k": 1}).json()
    assert hits["hits"][0]["document"]["metadata"]["path"] == "one.md"

    before = jobs(served)
    third = cli("sync", str(folder), "--url", served.url)
    assert "4 unchanged" in third.stdout and "0 added" in third.stdout
    assert jobs(served) == before  # nothing was uploaded


def test_sync_of_a_missing_folder(cli, tmp_path: Path) -> None:
    result = cli("sync", str(tmp_path / "nope"), "--url", "http://127.0.0.1:9")
    assert result.returncode == 2 and "No such folder" in result.stderr


def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_watch_picks_up_new_and_deleted_files(serve, tmp_path: Path) -> None:
    served = serve()
    folder = tmp_path / "watched"
    folder.mkdir()
    (folder / "first.txt").write_text("The first note.")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    command = [*CLI, "sync", str(folder), "--watch", "--debounce", "0.2", "--url", served.url]
    log = tmp_path / "watch.log"
    with log.open("w") as out:
        watcher = subprocess.Popen(command, env=env, stdout=out, stderr=out)
    try:
        wait_for(lambda: "Watching" in log.read_text(), timeout=60)  # after its first pass
        assert "first.txt" in held(served.url)
        time.sleep(0.5)  # the OS watch starts just after the line is printed
        (folder / "second.md").write_text("# Second\n\nA note written while watching.")
        wait_for(lambda: "second.md" in held(served.url))
        (folder / "first.txt").unlink()
        wait_for(lambda: "first.txt" not in held(served.url))
    finally:
        watcher.terminate()
        watcher.wait(30)
