"""``embedsearch ingest``: upload files and folders to a running server."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from app.settings import Settings

if TYPE_CHECKING:
    import httpx
    from rich.progress import Progress, TaskID


def files_under(paths: list[str]) -> Iterator[Path]:
    """Every file named, and every file under the folders named (recursively), sorted."""
    for name in paths:
        path = Path(name)
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
            )
        elif path.is_file():
            yield path
        else:
            raise SystemExit(f"embedsearch: no such file or folder: {name}")


def ingest(settings: Settings, args: argparse.Namespace) -> int:
    """Upload files to the running server, with a progress bar, then print a summary."""
    import httpx
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    url = args.url or f"http://{settings.host}:{settings.port}"
    key = args.key or (settings.api_keys[0] if settings.api_keys else None)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    files = list(files_under(args.paths))
    totals = {"added": 0, "replaced": 0, "duplicate": 0, "failed": 0}
    failures: list[str] = []
    with (
        httpx.Client(base_url=url, headers=headers, timeout=600) as http,
        Progress(console=console) as bar,
    ):
        task = bar.add_task("Ingesting", total=len(files))
        for path in files:
            bar.update(task, description=path.name)
            try:
                with path.open("rb") as f:
                    response = http.post(
                        "/api/documents",
                        files={"files": (path.name, f)},
                        data={"collection": args.collection},
                    )
            except httpx.ConnectError:
                console.print(f"No server at {url}: start one with `embedsearch serve`.")
                return 2
            job = _follow(http, response, bar, task)
            _tally(job, path, totals, failures)
            bar.advance(task)
    print(
        f"added {totals['added']}, unchanged duplicates {totals['duplicate']}, "
        f"replaced {totals['replaced']}, failed {totals['failed']}"
    )
    for failure in failures:
        print(f"  failed: {failure}")
    return 1 if totals["failed"] else 0


def _follow(http: httpx.Client, response: httpx.Response, bar: Progress, task: TaskID) -> dict:
    """Wait for an upload's job, showing its chunk progress; an error response stands as is."""
    if response.status_code >= 400:
        return {"error": response.json()["error"]["message"]}
    job = response.json()
    while job["state"] not in ("done", "failed"):
        progress = job["progress"]
        bar.update(
            task, description=f"{job['state']} {progress['done']}/{progress['total']} chunks"
        )
        time.sleep(0.2)
        job = http.get(f"/api/jobs/{job['id']}").json()
    return job


def _tally(job: dict, path: Path, totals: dict[str, int], failures: list[str]) -> None:
    if job.get("error") or job.get("state") == "failed":
        totals["failed"] += 1
        failures.append(f"{path}: {job['error']}")
        return
    for file in job["result"]["files"]:
        for key in ("added", "replaced", "duplicate"):
            totals[key] += file[key]
        if file["error"]:
            totals["failed"] += 1
            failures.append(f"{path}: {file['error']}")
