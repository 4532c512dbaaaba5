"""One owner per data directory: a lock file, held with ``flock`` and naming its holder.

Two servers on one directory would each keep their own vector indexes in memory and miss the
other's documents; a second one, or a command that rewrites what a server is using, is refused
with the holder's pid instead. The kernel drops the lock when its holder exits, however it exits.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from app.errors import Conflict

LOCK_NAME = "embedsearch.lock"


class DataDirInUse(Conflict):
    """Another process owns the data directory."""


class Owner:
    """This process's hold on a data directory, taken when created, given up by ``release``."""

    def __init__(self, data_dir: Path, role: str) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise DataDirInUse(
                f"The data directory {data_dir} is in use by {holder}. Stop that first, or set "
                "EMBEDSEARCH_DATA_DIR to another directory."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} ({role})\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        """Give the directory up (the file stays: removing it would race the next owner)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None

    def __enter__(self) -> Owner:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()
