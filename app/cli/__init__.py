"""The ``embedsearch`` command line: serve, ingest, verify, reindex, compact, export, import, bench."""

from __future__ import annotations

import argparse
import logging
import sys

from app.cli.admin import bench, compact, export, import_, reindex, serve, verify
from app.cli.ingest import ingest
from app.settings import get_settings


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
