"""``embedsearch ingest``: send files and folders to a running server.

A folder's files go with their paths in it, so a second run sends only new and changed files
(as ``sync`` does, but deleting nothing); files named one by one are known by their name.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from app.cli.client import CliError, Server
from app.cli.display import Display, Outcome, report, setup_logging
from app.cli.folder import plan
from app.cli.upload import LocalFile, Uploader
from app.settings import Settings


def ingest(settings: Settings, args: argparse.Namespace) -> int:
    """Upload files and folders, with progress, then print a summary; 1 if any file failed."""
    if args.sync:
        from app.cli.sync import sync

        if len(args.paths) != 1 or not Path(args.paths[0]).is_dir():
            raise CliError("--sync takes one folder: embedsearch ingest FOLDER --sync.")
        args.folder = args.paths[0]
        return sync(settings, args)
    console = Console(stderr=True)
    setup_logging(console, args.verbose)
    outcome = Outcome()
    with Server(settings, args) as server:
        limits = server.limits()
        files = []
        for name in args.paths:
            path = Path(name)
            if path.is_dir():
                todo = plan(server, limits, path, args.collection)
                files += todo.send
                outcome.counts["unchanged"] += todo.unchanged
            elif path.is_file():
                files.append(LocalFile(path, str(path), path.stat().st_size))
            else:
                raise CliError(f"No such file or folder: {name}")
        with Display(console, len(files)) as display:
            Uploader(server, limits, args.collection, display, outcome, args.in_flight).send(files)
    report(Console(), outcome)
    return 1 if outcome.failures else 0
