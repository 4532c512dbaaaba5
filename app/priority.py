"""Bulk work yields the cores to requests: a lower CPU priority for the threads that do it.

On two busy cores the model's threads, ingestion and the request threads all want the CPU. With
equal shares a search waited its turn behind the model's rounds at every step (measured in
alternating runs on a busy machine: p99 of a search under 64 embedding connections and a bulk
upload 64-76 ms, 47-50 ms with the model's threads 5 nice steps lower). The model still gets
every cycle the requests leave.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

MAX_NICE = 19


def lower_thread_priority(steps: int) -> None:
    """Lower the calling thread's CPU priority by ``steps`` nice steps; threads it starts later
    inherit it. Linux only (elsewhere, or with 0, nothing changes)."""
    if steps <= 0 or not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()  # on Linux a thread's id is a PRIO_PROCESS target
    with contextlib.suppress(OSError):
        now = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(MAX_NICE, now + steps))
