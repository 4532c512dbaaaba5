"""The ``embedsearch`` command line: serve; ingest, sync, search, collections and documents
against a running server; verify, reindex, migrate-index, compact, export, import and bench
offline."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from app.cli.admin import bench, compact, export, import_, migrate_index, reindex, serve, verify
from app.cli.client import CliError, add_server_options
from app.cli.ingest import ingest
from app.cli.query import collections, documents, search
from app.cli.sync import sync
from app.errors import AppError
from app.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``embedsearch`` command."""
    parser = argparse.ArgumentParser(prog="embedsearch", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("serve", help="Run the server (default http://127.0.0.1:8000).")
    p.add_argument("--host", help="Bind address (default: EMBEDSEARCH_HOST or 127.0.0.1).")
    p.add_argument("--port", type=int, help="Port (default: EMBEDSEARCH_PORT or 8000).")
    p.add_argument(
        "--embeddings-only",
        action="store_true",
        help="Serve only /v1/embeddings (no database): a model pool for EMBEDSEARCH_EMBEDDINGS_URL.",
    )
    p.set_defaults(run=serve)
    _client_commands(commands)
    p = commands.add_parser("verify", help="Check the vector indexes against SQLite.")
    p.add_argument("--repair", action="store_true", help="Fix what differs, from stored vectors.")
    p.set_defaults(run=verify)
    commands.add_parser("reindex", help="Rebuild the vector indexes from SQLite.").set_defaults(
        run=reindex
    )
    p = commands.add_parser(
        "migrate-index", help="Copy the vectors to another index backend (no re-embedding)."
    )
    p.add_argument("--to", required=True, choices=("faiss", "qdrant"), help="Target backend.")
    p.set_defaults(run=migrate_index)
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
    # Which CPU build faiss loads, and from where the model is read, is not news to a user.
    for chatty in ("faiss.loader", "sentence_transformers"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        status = args.run(get_settings(), args)
    except CliError as error:
        print(f"embedsearch: {error}", file=sys.stderr)
        status = 2
    except AppError as error:  # e.g. the data directory is in use: a reason, not a traceback
        print(f"embedsearch: {error.message}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print("embedsearch: interrupted", file=sys.stderr)
        status = 130
    sys.exit(status)


def _client_commands(commands: Any) -> None:
    """The commands that talk to a running server."""
    p = commands.add_parser("ingest", help="Upload files and folders to the running server.")
    p.add_argument("paths", nargs="+", help="Files or folders (read recursively).")
    p.add_argument("--collection", default="default", help="Collection to add to.")
    p.add_argument(
        "--sync", action="store_true", help="Make the collection match the folder (as `sync`)."
    )
    _upload_options(p)
    p.set_defaults(run=ingest, watch=False, debounce=1.0)
    p = commands.add_parser(
        "sync", help="Make a collection match a folder: send changed files, delete removed ones."
    )
    p.add_argument("folder", help="The folder (read recursively).")
    p.add_argument("--collection", default="default", help="Collection to keep in sync.")
    p.add_argument("--watch", action="store_true", help="Keep syncing as files change.")
    p.add_argument(
        "--debounce", type=float, default=1.0, help="With --watch: seconds of quiet before a sync."
    )
    _upload_options(p)
    p.set_defaults(run=sync, sync=True)
    p = commands.add_parser("search", help="Search a collection from the terminal.")
    p.add_argument("query", help="What to search for, in plain words.")
    p.add_argument("--collection", default="default", help="Collection to search.")
    p.add_argument("--mode", choices=["hybrid", "semantic", "keyword"], default="hybrid")
    p.add_argument("-k", type=int, default=10, help="How many hits.")
    p.add_argument("--json", action="store_true", help="Print the server's JSON.")
    add_server_options(p)
    p.set_defaults(run=search)
    p = commands.add_parser("collections", help="List the collections.")
    p.add_argument("--json", action="store_true", help="Print the server's JSON.")
    add_server_options(p)
    p.set_defaults(run=collections)
    p = commands.add_parser("documents", help="List documents, newest first.")
    p.add_argument("--collection", help="Only this collection's.")
    p.add_argument("--limit", type=int, default=50, help="How many (at most 1000).")
    p.add_argument("--json", action="store_true", help="Print the server's JSON.")
    add_server_options(p)
    p.set_defaults(run=documents)


def _upload_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--in-flight",
        type=int,
        default=3,
        help="Uploads sent before the earlier ones finish (default 3).",
    )
    add_server_options(parser)
