"""What the command line shows while it works and when it ends: a bar for files and one for
chunks on a terminal (plain progress lines otherwise), then a summary and a table of failures."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

PLAIN_EVERY = 2.0  # seconds between progress lines when no terminal redraws a bar


def setup_logging(console: Console, verbose: bool) -> None:
    """Library logs (httpx's request lines among them) only with --verbose, above the bars."""
    handler = RichHandler(console=console, show_path=False, markup=False)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, handlers=[handler], force=True
    )


@dataclass
class Outcome:
    """What became of every file: counts, failures with reasons, and the time taken."""

    counts: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[str, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def add(self, status: str, name: str = "", reason: str | None = None) -> None:
        """Count one file's outcome (added, replaced, unchanged, deleted or failed)."""
        self.counts[status] += 1
        if status == "failed":
            self.failures.append((name, reason or "unknown error"))


class RateColumn(ProgressColumn):
    """Items per second."""

    def render(self, task: Task) -> Text:
        """The task's speed, once there is one."""
        return Text(f"{task.speed:,.1f}/s" if task.speed else "", style="progress.data.speed")


class Display:
    """Progress of files sent and chunks embedded; thread-safe."""

    def __init__(self, console: Console, files: int) -> None:
        self.console = console
        self.live = console.is_terminal
        self._lock = threading.Lock()
        self._done = {"files": 0, "chunks": 0}
        self._total = {"files": files, "chunks": 0}
        self._printed = 0.0
        self._started = time.monotonic()
        self.bars = Progress(
            TextColumn("{task.description:>6}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not self.live,
        )
        self._tasks = {
            "files": self.bars.add_task("files", total=files),
            "chunks": self.bars.add_task("chunks", total=None),
        }

    def __enter__(self) -> Display:
        self.bars.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.bars.stop()
        if not self.live:
            self._line()

    def advance(self, what: str, done: int = 0, total: int = 0) -> None:
        """``done`` more files or chunks finished, ``total`` more known to be coming."""
        with self._lock:
            self._done[what] += done
            self._total[what] += total
            self.bars.update(
                self._tasks[what], completed=self._done[what], total=self._total[what] or None
            )
            if not self.live and time.monotonic() - self._printed >= PLAIN_EVERY:
                self._line()

    def _line(self) -> None:
        """One plain progress line, for logs and pipes."""
        self._printed = time.monotonic()
        elapsed = max(self._printed - self._started, 1e-9)
        parts = [
            f"{what} {self._done[what]}/{self._total[what]} ({self._done[what] / elapsed:.1f}/s)"
            for what in ("files", "chunks")
        ]
        self.console.print(", ".join(parts), highlight=False)


def report(console: Console, outcome: Outcome, what: str = "files") -> None:
    """The summary line and, if any failed, a table of the files and why."""
    counts = outcome.counts
    elapsed = time.monotonic() - outcome.started
    handled = sum(counts[k] for k in ("added", "replaced", "unchanged", "failed"))
    rate = f" ({handled / elapsed:.1f} {what}/s)" if elapsed > 0 and handled else ""
    summary = ", ".join(
        f"{counts[k]} {k}" for k in ("added", "replaced", "unchanged", "deleted", "failed")
    )
    console.print(
        f"{handled} {what} in {elapsed:.1f} s{rate}: {summary}", highlight=False, soft_wrap=True
    )
    if not outcome.failures:
        return
    if not console.is_terminal:  # a pipe or a log: one line per failure, whole, to grep
        for name, reason in outcome.failures:
            console.print(f"failed: {name}: {reason}", highlight=False, soft_wrap=True)
        return
    table = Table("failed file", "reason")
    for name, reason in outcome.failures:
        table.add_row(name, reason)
    console.print(table)
