"""Commands that run the server or work on its data directory offline: serve, verify, reindex,
migrate-index, compact, export, import, bench."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

from app.settings import PROJECT_ROOT, Settings

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def startup_message(settings: Settings, host: str, port: int) -> str:
    """What a user needs to know as the server starts: where it is and what it runs."""
    embeddings = (
        f"embeddings from {settings.embeddings_url}"
        if settings.embeddings_url
        else f"model {settings.model} on {settings.backend} (loading)"
    )
    address = f"[{host}]" if ":" in host else host  # an IPv6 address is bracketed in a URL
    return (
        f"embedsearch at http://{address}:{port} (UI at /, API docs at /docs); "
        f"{embeddings}; data in {settings.data_dir.resolve()}"
    )


def serve(settings: Settings, args: argparse.Namespace) -> int:
    """Run the HTTP server."""
    import uvicorn

    from app.main import create_app, create_embeddings_app

    host = args.host or settings.host
    port = args.port or settings.port
    log = logging.getLogger("embedsearch")
    log.info(startup_message(settings, host, port))
    if host in LOCAL_HOSTS:
        log.info(
            "Listening on %s only. To expose it, set EMBEDSEARCH_API_KEYS first, then "
            "EMBEDSEARCH_HOST=0.0.0.0 (ideally behind a TLS reverse proxy).",
            host,
        )
    build = create_embeddings_app if getattr(args, "embeddings_only", False) else create_app
    uvicorn.run(
        build(settings),
        host=host,
        port=port,
        log_level="info",
        access_log=settings.access_log,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    return 0


def verify(settings: Settings, args: argparse.Namespace) -> int:
    """Compare every collection's index with SQLite; with --repair, fix what differs."""
    from app.main import open_store
    from app.store.owner import Owner

    # Checking may run beside the server; repairing rewrites its index files, so it may not.
    owner = Owner(settings.data_dir, "embedsearch verify --repair") if args.repair else None
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
    indexes.close()
    store.close()
    if owner:
        owner.release()
    return 0 if clean or args.repair else 1


def reindex(settings: Settings, args: argparse.Namespace) -> int:
    """Rebuild every collection's index from the vectors stored in SQLite (no re-embedding)."""
    from app.main import open_store
    from app.store.owner import Owner

    with Owner(settings.data_dir, "embedsearch reindex"):
        store, indexes = open_store(settings)
        for collection in store.list_collections():
            indexes.rebuild(collection.id)
            print(f"{collection.name}: rebuilt, {collection.chunks} vectors")
        indexes.close()
        store.close()
    return 0


def migrate_index(settings: Settings, args: argparse.Namespace) -> int:
    """Build every collection's index on another backend from the stored vectors (no
    re-embedding).

    The server may keep running on the old backend meanwhile: whatever it writes after a
    collection was copied is caught up by the new backend's start-up repair.
    """
    from app.index.factory import open_indexes
    from app.main import database_url
    from app.store.database import Store

    store = Store(database_url(settings), pool_size=1)
    indexes = open_indexes(settings, store, backend=args.to)
    for collection in store.list_collections():
        report = indexes.rebuild(collection.id)
        print(
            f"{collection.name}: {collection.chunks} vectors copied to {args.to} "
            f"({indexes.backend.describe(collection.id)}), store version {report.store_version}"
        )
    indexes.close()
    store.close()
    print(f"Now set EMBEDSEARCH_INDEX_BACKEND={args.to} and restart the server.")
    return 0


def compact(settings: Settings, args: argparse.Namespace) -> int:
    """Reclaim the space of deleted documents (VACUUM)."""
    from app.store.database import Store

    if settings.database_url:
        store = Store(settings.database_url, pool_size=1)
        store.compact()
        store.close()
        print("vacuumed the PostgreSQL database")
        return 0
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

    if settings.database_url:
        print("embedsearch: export copies the SQLite file; back PostgreSQL up with pg_dump.")
        return 1

    manifest = export_archive(settings.data_dir / "embedsearch.db", Path(args.archive))
    counts = ", ".join(f"{c['name']}: {c['documents']} documents" for c in manifest["collections"])
    print(f"exported to {args.archive} ({counts or 'no collections'})")
    return 0


def import_(settings: Settings, args: argparse.Namespace) -> int:
    """Restore an archive into an empty data directory and rebuild the indexes."""
    from app.main import open_store
    from app.store.backup import import_archive
    from app.store.owner import Owner

    with Owner(settings.data_dir, "embedsearch import"):
        manifest = import_archive(Path(args.archive), settings.data_dir, settings.max_import_bytes)
        store, indexes = open_store(settings)
        for collection in store.list_collections():
            indexes.rebuild(collection.id)
        indexes.close()
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
