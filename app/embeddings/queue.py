"""The engine's queue: inputs waiting for the model, in priority lanes, and the hand-back of rows.

A worker takes a round from the most urgent lane that holds anything, oldest first. Finished
requests wake their async callers with one call into each event loop per batch, not one per
request: a cross-thread wake-up costs the event loop a system call and a loop iteration.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TypeVar

import numpy as np

from app.embeddings.encoder import PIECE_ROWS, ROUND_TOKENS_ALONE, Encoder
from app.errors import RateLimited


class Priority(IntEnum):
    """Queue lanes, most urgent first: a lane is served only while those above it are empty."""

    SEARCH = 0  # a person waiting on a search
    API = 1  # embeddings API calls
    BULK = 2  # ingestion


@dataclass(eq=False)
class Request:
    """One embed call: its token ids, the rows filled in so far, and who waits for them."""

    encoder: Encoder
    seqs: list[list[int]]
    vectors: np.ndarray
    remaining: int
    future: Future[np.ndarray] = field(default_factory=Future)
    priority: Priority = Priority.API
    # An async caller's waiter, woken on its own loop by ``settle``.
    loop: asyncio.AbstractEventLoop | None = None
    waiter: asyncio.Future[np.ndarray] | None = None

    def fail(self, exc: BaseException) -> Request:
        """Settle with an error (unless settled already); returns itself for ``settle``."""
        _complete(self.future.set_exception, exc)
        return self


Item = tuple[Request, int]  # a request and the index of one of its inputs


class Lanes:
    """Queued inputs, one FIFO lane per priority; callers hold the engine's lock."""

    def __init__(self, max_queued: int) -> None:
        self.max_queued = max_queued
        self.lanes: tuple[deque[Item], ...] = tuple(deque() for _ in Priority)

    def __len__(self) -> int:
        return sum(len(lane) for lane in self.lanes)

    def put(self, request: Request, priority: Priority) -> None:
        """Queue a request's inputs shortest first; 429 when the queue would pass its limit."""
        order = sorted(range(len(request.seqs)), key=lambda i: len(request.seqs[i]))
        queued = len(self)
        # An empty queue takes any request, so no single request can be refused forever.
        if queued and queued + len(order) > self.max_queued:
            raise RateLimited(
                "Too many inputs are waiting for the model; retry shortly.",
                headers={"Retry-After": "1"},
            )
        request.priority = priority
        self.lanes[priority].extend((request, i) for i in order)

    def more_urgent(self, priority: Priority) -> bool:
        """Whether a lane above ``priority`` holds anything (a hint: read without the lock)."""
        return any(self.lanes[:priority])

    def requeue(self, items: list[Item]) -> None:
        """Put inputs taken but not run back at the head of their lanes, in order."""
        for item in reversed(items):
            self.lanes[item[0].priority].appendleft(item)

    def take(self, workers: int, max_tokens: int) -> list[Item]:
        """The oldest inputs of the most urgent lane: one encoder, at most ``max_tokens`` and
        one worker's share; a few rows (and tokens) for an encoder that runs rows alone."""
        queue = next((lane for lane in self.lanes if lane), None)
        if queue is None:
            return []
        share = -(-len(queue) // workers)
        if queue[0][0].encoder.concurrency > 1:
            share = min(share, PIECE_ROWS)
            max_tokens = min(max_tokens, ROUND_TOKENS_ALONE)
        taken: list[Item] = []
        tokens = 0
        while queue and len(taken) < share:
            request, i = queue[0]
            if request.future.done():  # cancelled or failed: skip its remaining inputs
                queue.popleft()
                continue
            width = len(request.seqs[i]) + 2
            if taken and (
                request.encoder is not taken[0][0].encoder or tokens + width > max_tokens
            ):
                break
            taken.append(queue.popleft())
            tokens += width
        return taken

    def drain(self) -> list[Request]:
        """Empty every lane; the requests that were waiting."""
        waiting = {request: None for lane in self.lanes for request, _ in lane}
        for lane in self.lanes:
            lane.clear()
        return list(waiting)


def deliver(batch: list[Item], vectors: np.ndarray) -> list[Request]:
    """Put a batch's rows in their requests; the requests this completed (settled already)."""
    finished = []
    for (request, i), vector in zip(batch, vectors, strict=True):
        request.vectors[i] = vector
        request.remaining -= 1
        if request.remaining == 0:
            _complete(request.future.set_result, request.vectors)
            finished.append(request)
    return finished


def settle(requests: list[Request]) -> None:
    """Wake the async callers of settled requests: one call into each event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Request]] = defaultdict(list)
    for request in requests:
        if request.loop is not None:
            by_loop[request.loop].append(request)
    for loop, done in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_wake, done)


def _wake(requests: list[Request]) -> None:
    """On the caller's loop: hand each waiter its request's outcome."""
    for request in requests:
        waiter = request.waiter
        if waiter is None or waiter.done() or request.future.cancelled():
            continue
        if (exc := request.future.exception()) is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(request.future.result())


T = TypeVar("T")


def _complete(setter: Callable[[T], None], value: T) -> None:
    """Set a future's outcome unless it is settled already (cancelled by a departed client)."""
    with contextlib.suppress(InvalidStateError):
        setter(value)
