"""The ``embedsearch`` command line."""

from __future__ import annotations

import argparse
import logging

from app.settings import Settings, get_settings


def serve(settings: Settings, args: argparse.Namespace) -> None:
    """Run the HTTP server."""
    import uvicorn

    from app.main import create_app

    host = args.host or settings.host
    port = args.port or settings.port
    if host in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("embedsearch").info(
            "Listening on %s only. To expose it, set EMBEDSEARCH_API_KEYS first, then "
            "EMBEDSEARCH_HOST=0.0.0.0 (ideally behind a TLS reverse proxy).",
            host,
        )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``embedsearch`` command."""
    parser = argparse.ArgumentParser(prog="embedsearch", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("serve", help="Run the server (default http://127.0.0.1:8000).")
    p.add_argument("--host", help="Bind address (default: EMBEDSEARCH_HOST or 127.0.0.1).")
    p.add_argument("--port", type=int, help="Port (default: EMBEDSEARCH_PORT or 8000).")
    p.set_defaults(run=serve)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args.run(get_settings(), args)
