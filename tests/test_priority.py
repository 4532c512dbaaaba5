"""Bulk work's threads run at a lower CPU priority than the threads serving requests."""

from __future__ import annotations

import threading

import pytest

from app.priority import MAX_NICE, PER_THREAD, lower_thread_priority, thread_nice

pytestmark = pytest.mark.skipif(not PER_THREAD, reason="per-thread nice values are Linux's")


def nice_in_thread(steps: int) -> tuple[int, int]:
    """A new thread's nice before and after lowering its priority by ``steps``, and of a
    thread that one starts afterwards."""
    seen: list[int] = []

    def child() -> None:
        seen.append(thread_nice())

    def lowered() -> None:
        seen.append(thread_nice())
        lower_thread_priority(steps)
        grandchild = threading.Thread(target=child)
        grandchild.start()
        grandchild.join()

    thread = threading.Thread(target=lowered)
    thread.start()
    thread.join()
    return seen[0], seen[1]


def test_a_thread_lowers_its_own_priority_and_passes_it_on() -> None:
    before = thread_nice()
    start, inherited = nice_in_thread(3)
    assert inherited == min(MAX_NICE, start + 3)
    assert thread_nice() == before  # the caller's own priority is untouched


def test_zero_steps_change_nothing() -> None:
    start, inherited = nice_in_thread(0)
    assert inherited == start


def test_the_priority_stops_at_the_lowest_there_is() -> None:
    _, inherited = nice_in_thread(50)
    assert inherited == MAX_NICE
