"""``embedsearch sync FOLDER``: make a collection match a folder, once or (``--watch``) as files
change. Only new and changed files are sent; deleted files' documents are deleted."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from app.cli.client import CliError, Limits, Server
from app.cli.display import Display, Outcome, report, setup_logging
from app.cli.folder import plan
from app.cli.upload import Uploader
from app.settings import Settings


def sync(settings: Settings, args: argparse.Namespace) -> int:
    """Sync the folder once, then with --watch again after every change, until interrupted."""
    folder = Path(args.folder)
    if not folder.is_dir():
        raise CliError(f"No such folder: {args.folder}")
    console = Console(stderr=True)
    setup_logging(console, args.verbose)
    with Server(settings, args) as server:
        status = sync_once(server, folder, args, console)
        if not args.watch:
            return status
        import watchfiles

        console.print(f"Watching {folder} for changes; Ctrl-C stops.", highlight=False)
        for _ in watchfiles.watch(
            folder, debounce=int(args.debounce * 1000), raise_interrupt=False
        ):
            try:
                status = sync_once(server, folder, args, console)
            except CliError as error:  # the server may be restarting: say so, keep watching
                console.print(f"embedsearch: {error}", highlight=False)
                status = 2
    return status


def sync_once(server: Server, folder: Path, args: argparse.Namespace, console: Console) -> int:
    """One pass: send new and changed files, delete the documents of deleted ones."""
    limits = server.limits()
    todo = plan(server, limits, folder, args.collection)
    outcome = Outcome()
    outcome.counts["unchanged"] += todo.unchanged
    with Display(console, len(todo.send)) as display:
        uploader = Uploader(server, limits, args.collection, display, outcome, args.in_flight)
        uploader.send(todo.send)
    delete(server, limits, args.collection, todo.gone)
    outcome.counts["deleted"] += len(todo.gone)
    report(Console(), outcome)
    return 1 if outcome.failures else 0


def delete(server: Server, limits: Limits, collection: str, paths: list[str]) -> None:
    """Delete files by path: one request, unless the paths overflow the server's request size."""
    budget = limits.max_request_bytes // 2  # JSON escapes can double a path's bytes
    piece: list[str] = []
    size = 0
    for path in paths:
        if piece and size + len(path.encode()) + 4 > budget:
            _delete(server, collection, piece)
            piece, size = [], 0
        piece.append(path)
        size += len(path.encode()) + 4  # quotes, comma, space
    if piece:
        _delete(server, collection, piece)


def _delete(server: Server, collection: str, paths: list[str]) -> None:
    server.json("POST", f"/api/collections/{collection}/files/delete", json={"paths": paths})
