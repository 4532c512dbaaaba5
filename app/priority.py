"""Bulk work yields the cores to requests: a lower CPU priority for the threads that do it.

On two busy cores the model's threads, ingestion and the request threads all want the CPU. With
equal shares a search waited its turn behind the model's rounds at every step (measured in
alternating runs on a busy machine: p99 of a search under 64 embedding connections and a bulk
upload 64-76 ms, 47-50 ms with the model's threads 5 nice steps lower). Twelve steps do better
again (another machine, alternating runs: p50 / p99 median 35 / 77 ms at 5 steps and 24 / 55 at
12, six runs each; 24 / 53 at 19, four runs). The model still gets every cycle the requests leave.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

MAX_NICE = 19
PER_THREAD = sys.platform.startswith("linux")  # where a thread's id is a PRIO_PROCESS target


def thread_nice() -> int:
    """The calling thread's nice value (Linux)."""
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def lower_thread_priority(steps: int) -> None:
    """Lower the calling thread's CPU priority by ``steps`` nice steps; threads it starts later
    inherit it. Linux only (elsewhere, or with 0, nothing changes)."""
    if steps <= 0 or not PER_THREAD:
        return
    with contextlib.suppress(OSError):
        target = min(MAX_NICE, thread_nice() + steps)
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), target)
