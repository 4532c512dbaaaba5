"""The ``embedsearch`` command line: serve, ingest, verify, reindex, compact, export, import, bench."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from app.settings import PROJECT_ROOT, Settings, get_settings

if TYPE_CHECKING:
    import httpx
    from rich.progress import Progress, TaskID

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def serve(settings: Settings, args: argparse.Namespace) -> int:
    """Run the HTTP server."""
    import uvicorn

    from app.main import create_app

    host = args.host or settings.host
    port = args.port or settings.port
    if host in LOCAL_HOSTS:
        logging.getLogger("embedsearch").info(
            "Listening on %s only. To expose it, set EMBEDSEARCH_API_KEYS first, then "
            "EMBEDSEARCH_HOST=0.0.0.0 (ideally behind a TLS reverse proxy).",
            host,
        )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    return 0


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


def verify(settings: Settings, args: argparse.Namespace) -> int:
    """Compare every collection's index with SQLite; with --repair, fix what differs."""
    from app.main import open_store

    store, indexes = open_store(settings)
    clean = True
    for collection in store.list_collections():
        report = indexes.repair(collection.id) if args.repair else indexes.check(collection.id)
        clean &= report.ok
        state = "ok" if report.ok else "MISMATCH"
        print(
            f"{collection.name}: {state} (index {report.state}, index version "
            f"{report.index_version}, store version {report.store_version}, "
            f"{report.missing} missing, {report.extra} extra"
            + (f"; {report.action})" if args.repair else ")")
        )
    store.close()
    return 0 if clean or args.repair else 1


def reindex(settings: Settings, args: argparse.Namespace) -> int:
    """Rebuild every collection's index from the vectors stored in SQLite (no re-embedding)."""
    from app.main import open_store

    store, indexes = open_store(settings)
    for collection in store.list_collections():
        indexes.rebuild(collection.id)
        print(f"{collection.name}: rebuilt, {collection.chunks} vectors")
    store.close()
    return 0


def compact(settings: Settings, args: argparse.Namespace) -> int:
    """Reclaim the space of deleted documents (SQLite VACUUM)."""
    from app.store.database import Store

    path = settings.data_dir / "embedsearch.db"
    before = path.stat().st_size
    store = Store(path)
    store.compact()
    store.close()
    print(f"{before} -> {path.stat().st_size} bytes")
    return 0


def export(settings: Settings, args: argparse.Namespace) -> int:
    """Write the database and a manifest to one archive."""
    from app.store.backup import export_archive

    manifest = export_archive(settings.data_dir / "embedsearch.db", Path(args.archive))
    counts = ", ".join(f"{c['name']}: {c['documents']} documents" for c in manifest["collections"])
    print(f"exported to {args.archive} ({counts or 'no collections'})")
    return 0


def import_(settings: Settings, args: argparse.Namespace) -> int:
    """Restore an archive into an empty data directory and rebuild the indexes."""
    from app.errors import AppError
    from app.main import open_store
    from app.store.backup import import_archive

    try:
        manifest = import_archive(Path(args.archive), settings.data_dir)
    except AppError as error:
        print(f"embedsearch: {error.message}", file=sys.stderr)
        return 1
    store, indexes = open_store(settings)
    for collection in store.list_collections():
        indexes.rebuild(collection.id)
    store.close()
    print(f"imported {len(manifest['collections'])} collection(s) into {settings.data_dir}")
    return 0


def bench(settings: Settings, args: argparse.Namespace) -> int:
    """Run the benchmarks of a source checkout's bench/ (its own options follow ``bench``)."""
    # bench/ sits beside app/ in a checkout (an editable install maps only app/), not in a wheel.
    if not (PROJECT_ROOT / "bench" / "runner.py").is_file():
        print(
            "embedsearch: the benchmarks are not installed with the package; run "
            "`embedsearch bench` from a source checkout (pip install -e .).",
            file=sys.stderr,
        )
        return 2
    # A child process with the checkout on its path: bench/ is no package of this install.
    path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "bench", *args.options]
    return subprocess.run(command, env={**os.environ, "PYTHONPATH": path}).returncode


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``embedsearch`` command."""
    parser = argparse.ArgumentParser(prog="embedsearch", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("serve", help="Run the server (default http://127.0.0.1:8000).")
    p.add_argument("--host", help="Bind address (default: EMBEDSEARCH_HOST or 127.0.0.1).")
    p.add_argument("--port", type=int, help="Port (default: EMBEDSEARCH_PORT or 8000).")
    p.set_defaults(run=serve)
    p = commands.add_parser("ingest", help="Upload files and folders to the running server.")
    p.add_argument("paths", nargs="+", help="Files or folders (read recursively).")
    p.add_argument("--collection", default="default", help="Collection to add to.")
    p.add_argument("--url", help="Server URL (default: from EMBEDSEARCH_HOST and _PORT).")
    p.add_argument("--key", help="API key (default: the first of EMBEDSEARCH_API_KEYS).")
    p.set_defaults(run=ingest)
    p = commands.add_parser("verify", help="Check the vector indexes against SQLite.")
    p.add_argument("--repair", action="store_true", help="Fix what differs, from stored vectors.")
    p.set_defaults(run=verify)
    commands.add_parser("reindex", help="Rebuild the vector indexes from SQLite.").set_defaults(
        run=reindex
    )
    commands.add_parser("compact", help="Reclaim space after deletes.").set_defaults(run=compact)
    p = commands.add_parser("export", help="Write the database and a manifest to one archive.")
    p.add_argument("archive", help="The archive to write (.tar.gz).")
    p.set_defaults(run=export)
    p = commands.add_parser("import", help="Restore an archive into an empty data directory.")
    p.add_argument("archive", help="An archive written by `embedsearch export`.")
    p.set_defaults(run=import_)
    p = commands.add_parser(
        "bench",
        help="Run the benchmarks (source checkout): `embedsearch bench --help`.",
        add_help=False,
    )
    p.set_defaults(run=bench)
    # The benchmark runner parses its own options: pass on whatever follows `bench`.
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.options = rest
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sys.exit(args.run(get_settings(), args))
