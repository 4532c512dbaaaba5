"""The embeddings engine: validation, token counting and dynamic batching across requests.

Every caller (the HTTP route, ingestion, search) goes through ``Engine.embed`` / ``aembed``.
Requests are queued by priority (a search query first, then API calls, then bulk ingestion);
worker threads take the queued inputs in rounds from the most urgent lane, first-in first-out
(a few batches' worth at a time), sort each round by length so that like lengths share a batch,
cut it into batches bounded by a token budget (padded length x count), run the model and hand
each request its rows back. A full queue refuses new work with 429 instead of growing.

An encoder that runs several batches at once (``Encoder.concurrency``: onnx-int8 runs one per
core, each row alone) gets as many worker threads, and each takes at most its share of what is
queued (guided self-scheduling), so the workers finish together and no core waits for another's
round. Its rounds are a few rows each: rows run alone gain nothing from large batches, while
small ones hand results back steadily and let an urgent request in within milliseconds. A
search's own query does not queue for such an encoder at all: it runs on the searching thread.
The workers run a few nice steps below the request threads (``nice``), so on busy cores the
requests' own work, a search's query included, goes first.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from app.embeddings.encoder import Encoder, EncodeRows
from app.embeddings.models import ModelRegistry, ModelSpec
from app.embeddings.queue import Item, Lanes, Priority, Request, deliver, settle
from app.embeddings.token_ids import TokenIdMode, decode_openai, unknown_id
from app.errors import BadRequest, ServiceUnavailable
from app.metrics import Metrics
from app.priority import lower_thread_priority
from app.settings import DEFAULTS

log = logging.getLogger("embedsearch.engine")

Inputs = str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]]
ROUND_BATCHES = 4  # a round takes this many batches' worth of the queue, then sorts it
INLINE_SIZE = 4096  # characters or token ids: tokenised and checked in well under a millisecond


@dataclass
class Embedded:
    """The result of one embed call."""

    vectors: np.ndarray  # float32, L2-normalised, one row per input in input order
    model: str
    prompt_tokens: int


@dataclass
class Limits:
    """What one request may ask of the engine."""

    max_inputs: int = DEFAULTS.max_inputs_per_request
    max_tokens: int = DEFAULTS.max_tokens_per_request
    truncate: bool = DEFAULTS.truncate
    token_ids: TokenIdMode = DEFAULTS.token_ids  # the vocabulary token-id input is read with


class Engine:
    """Embeds inputs with the registry's models, batching concurrent requests together."""

    def __init__(
        self,
        registry: ModelRegistry,
        load: Callable[[ModelSpec], Encoder],
        *,
        limits: Limits | None = None,
        batch_tokens: int = DEFAULTS.batch_tokens,
        max_queued: int = DEFAULTS.max_queued_inputs,
        metrics: Metrics | None = None,
        nice: int = DEFAULTS.background_nice,
    ) -> None:
        self.registry = registry
        self.limits = limits or Limits()
        self.batch_tokens = batch_tokens
        self.metrics = metrics or Metrics()
        self._load = load
        self.encoders: dict[str, Encoder] = {}
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.max_queued = max_queued
        self.nice = nice
        self._queue = Lanes(max_queued)
        self._cond = threading.Condition()
        self._stopping = False
        self._workers = 1
        self._delivering = threading.Lock()  # a request's rows may come from concurrent batches
        self._threads: list[threading.Thread] = []

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Load the models in the background, then serve the queue."""
        self._spawn(self._run)

    def _spawn(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name="embedsearch-engine", daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        """Stop the worker; requests still queued fail with 503."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
        refused = ServiceUnavailable("The server is shutting down.")
        settle([request.fail(refused) for request in self._queue.drain()])

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the models are loaded; 503 if they are not by ``timeout``."""
        if not self.ready.wait(timeout):
            raise ServiceUnavailable(
                "The model is still loading; try again in a few seconds.",
                headers={"Retry-After": "5"},
            )
        if self.error is not None:
            raise ServiceUnavailable(f"The model failed to load: {self.error}")

    def spec(self, model: str | None = None) -> ModelSpec:
        """The served model for a name; the default model when no name is given."""
        return self.registry.resolve(model) if model else next(iter(self.registry.specs.values()))

    def encoder(self, model: str | None = None) -> Encoder:
        """The loaded encoder for a model name (its tokenizer is what chunking counts with)."""
        spec = self.spec(model)
        self.wait_ready(timeout=120)
        return self.encoders[spec.id]

    # -- the Python interface ---------------------------------------------------------------

    def embed(
        self,
        inputs: Inputs,
        model: str | None = None,
        dimensions: int | None = None,
        priority: Priority = Priority.API,
    ) -> Embedded:
        """Embed texts or token-id arrays; blocks until done.

        A search's texts skip the queue when the model runs rows alone: they run right here,
        beside the workers' rows, so a search waits for no round in flight, and its share of
        the cores is the caller's, above the workers' (``nice``).
        """
        here = priority is Priority.SEARCH
        spec, request, tokens = self._submit(inputs, model, dimensions, priority, here=here)
        return self._finish(spec, request.future.result(), tokens, dimensions)

    async def aembed(
        self,
        inputs: Inputs,
        model: str | None = None,
        dimensions: int | None = None,
        priority: Priority = Priority.API,
    ) -> Embedded:
        """Embed without blocking the event loop.

        A small request is tokenised right here: that takes less time than handing it to a
        thread. A large one, or any while the model is still loading, is submitted from a thread.
        """
        loop = asyncio.get_running_loop()
        args = (inputs, model, dimensions, priority, loop.create_future())
        if self.ready.is_set() and _size(inputs) <= INLINE_SIZE:
            spec, request, tokens = self._submit(*args)
        else:
            spec, request, tokens = await asyncio.to_thread(self._submit, *args)
        try:
            vectors = await args[-1]
        except asyncio.CancelledError:
            request.future.cancel()  # the client left: workers skip its inputs still queued
            raise
        return self._finish(spec, vectors, tokens, dimensions)

    # -- validation and tokenising ----------------------------------------------------------

    def _submit(
        self,
        inputs: Inputs,
        model: str | None,
        dimensions: int | None,
        priority: Priority,
        waiter: asyncio.Future[np.ndarray] | None = None,
        here: bool = False,
    ) -> tuple[ModelSpec, Request, int]:
        spec = self.spec(model)
        encoder = self.encoder(spec.id)
        _check_dimensions(dimensions, encoder.dimensions)
        seqs, tokens = self._token_ids(inputs, encoder)
        if tokens > self.limits.max_tokens:
            raise BadRequest(
                f"Requested {tokens} tokens, over the limit of {self.limits.max_tokens} tokens "
                "per request. Split the input over several requests.",
                param="input",
                code="max_tokens_per_request",
            )
        seqs = [self._fit(ids, encoder) for ids in seqs]
        vectors = np.empty((len(seqs), encoder.dimensions), np.float32)
        loop = waiter.get_loop() if waiter else None
        request = Request(encoder, seqs, vectors, len(seqs), loop=loop, waiter=waiter)
        if here and encoder.concurrency > 1:
            request.future.set_result(encoder.encode(seqs))
        else:
            self._enqueue(request, priority)
        self.metrics.tokens.inc(tokens)
        return spec, request, tokens

    def _token_ids(self, inputs: Inputs, encoder: Encoder) -> tuple[list[list[int]], int]:
        """The model's token ids for each input, and the count billed (ids sent, if ids)."""
        items: list = [inputs] if isinstance(inputs, str) else list(inputs)
        if items and all(isinstance(x, int) and not isinstance(x, bool) for x in items):
            items = [items]  # one array of token ids
        if not items:
            raise BadRequest("'input' is empty: send at least one text.", param="input")
        if len(items) > self.limits.max_inputs:
            raise BadRequest(
                f"'input' has {len(items)} items; at most {self.limits.max_inputs} are allowed "
                "per request.",
                param="input",
            )
        if all(isinstance(x, str) for x in items):
            for i, text in enumerate(items):
                if not text:
                    raise BadRequest(f"input[{i}] is an empty string.", param="input")
            seqs = encoder.tokenize(items)
            return seqs, sum(len(ids) for ids in seqs)
        if all(isinstance(x, list | tuple) for x in items):
            for i, ids in enumerate(items):
                _check_ids(i, ids)
            sent = sum(len(ids) for ids in items)
            if self.limits.token_ids == "openai":
                return encoder.tokenize(decode_openai(items)), sent
            for i, ids in enumerate(items):
                _check_model_ids(i, ids, encoder.vocab_size)
            return [list(ids) for ids in items], sent
        raise BadRequest(
            "'input' must be a string, an array of strings, an array of token ids, or an array "
            "of token-id arrays, all of one kind.",
            param="input",
        )

    def _fit(self, ids: list[int], encoder: Encoder) -> list[int]:
        if len(ids) <= encoder.max_tokens:
            return ids
        if self.limits.truncate:
            return ids[: encoder.max_tokens]
        window = encoder.max_tokens + 2
        asked = len(ids) + 2
        raise BadRequest(
            f"This model's maximum context length is {window} tokens, however you requested "
            f"{asked} tokens ({asked} in your prompt; 0 for the completion). Please reduce your "
            "prompt; or completion length.",
            param="input",
            code="context_length_exceeded",
        )

    def _finish(
        self, spec: ModelSpec, vectors: np.ndarray, tokens: int, dimensions: int | None
    ) -> Embedded:
        if dimensions is not None and dimensions < vectors.shape[1]:
            vectors = vectors[:, :dimensions]
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return Embedded(vectors.astype(np.float32, copy=False), spec.id, tokens)

    # -- the queue and the worker -----------------------------------------------------------

    def _enqueue(self, request: Request, priority: Priority) -> None:
        with self._cond:
            if self._stopping:
                raise ServiceUnavailable("The server is shutting down.")
            self._queue.put(request, priority)
            self.metrics.queue_depth.set(len(self._queue))
            self._cond.notify()

    def _run(self) -> None:
        # The workers, and the model's own thread pools, are started from this thread.
        lower_thread_priority(self.nice)
        try:
            for spec in self.registry.specs.values():
                self.encoders[spec.id] = self._load(spec)
            for name, encoder in self.encoders.items():
                why = f" instead of {encoder.requested_backend}: {encoder.fallback}"
                log.info(
                    "Model ready: %s on %s%s",
                    name,
                    encoder.backend,
                    why if encoder.fallback else "",
                )
        except Exception as exc:  # reported by /health and every request
            log.exception("Model failed to load")
            self.error = exc
        # The models' half a million objects live as long as the process: out of the collector's
        # sight, a full collection takes well under a millisecond instead of ~250 ms (measured),
        # a pause of every thread that the requests in flight at the time would wait out.
        gc.freeze()
        self.ready.set()
        self._workers = max((e.concurrency for e in self.encoders.values()), default=1)
        for _ in range(self._workers - 1):
            self._spawn(self._serve)
        self._serve()

    def _serve(self) -> None:
        while items := self._next_round():
            for batch in self._batches(items):
                self._run_batch(batch)

    def _next_round(self) -> list[Item]:
        """The inputs queued now (see ``Lanes.take``), sorted by length."""
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return []
            taken = self._queue.take(self._workers, ROUND_BATCHES * self.batch_tokens)
            if self._queue:  # what is left is another worker's share
                self._cond.notify()
            self.metrics.queue_depth.set(len(self._queue))
        # Sorting across requests keeps padding small: like lengths share a batch.
        taken.sort(key=lambda item: len(item[0].seqs[item[1]]))
        return taken or self._next_round()

    def _batches(self, items: list[Item]) -> Iterator[list[Item]]:
        """Cut length-sorted inputs into batches whose padded size fits the token budget."""
        batch: list[Item] = []
        for item in items:
            width = len(item[0].seqs[item[1]]) + 2  # sorted, so the newest item is the widest
            if batch and width * (len(batch) + 1) > self.batch_tokens:
                yield batch
                batch = []
            batch.append(item)
        if batch:
            yield batch

    def _run_batch(self, batch: list[Item]) -> None:
        self.metrics.batch_size.observe(len(batch))
        encoder = batch[0][0].encoder
        rows: EncodeRows | None = getattr(encoder, "encode_rows", None)
        try:
            if rows is not None and encoder.concurrency > 1:
                batch, vectors = self._run_rows(rows, batch)
            else:
                vectors = encoder.encode([request.seqs[i] for request, i in batch])
        except Exception as exc:
            log.exception("Model batch failed")
            settle([request.fail(exc) for request in {r: None for r, _ in batch}])
            return
        with self._delivering:
            finished = deliver(batch, vectors)
        settle(finished)

    def _run_rows(
        self, encode_rows: EncodeRows, batch: list[Item]
    ) -> tuple[list[Item], np.ndarray]:
        """Run a batch row by row until a more urgent request is queued (a search need not wait
        for a round of bulk rows); put the rows not run back in their lanes. The rows run, and
        their vectors."""
        priority = batch[0][0].priority
        rows = encode_rows([request.seqs[i] for request, i in batch])
        vectors = []
        for vector in rows:
            vectors.append(vector)
            if len(vectors) < len(batch) and self._queue.more_urgent(priority):
                rows.close()
                with self._cond:
                    self._queue.requeue(batch[len(vectors) :])
                    self._cond.notify()
                break
        return batch[: len(vectors)], np.stack(vectors)


def _size(inputs: Inputs) -> int:
    """Characters or token ids in the input: what tokenising and checking it costs."""
    if isinstance(inputs, str):
        return len(inputs)
    return sum(len(x) if isinstance(x, str | list | tuple) else 1 for x in inputs)


def _check_dimensions(dimensions: int | None, native: int) -> None:
    if dimensions is None:
        return
    if (
        isinstance(dimensions, bool)
        or not isinstance(dimensions, int)
        or not 1 <= dimensions <= native
    ):
        raise BadRequest(
            f"'dimensions' must be an integer from 1 to {native}; got {dimensions!r}.",
            param="dimensions",
        )


def _check_ids(i: int, ids: Sequence[int]) -> None:
    if not ids:
        raise BadRequest(f"input[{i}] is an empty token array.", param="input")
    for token in ids:
        if isinstance(token, bool) or not isinstance(token, int):
            raise BadRequest(
                f"input[{i}] mixes token ids with other values; send integers only.", param="input"
            )


def _check_model_ids(i: int, ids: Sequence[int], vocab_size: int) -> None:
    for token in ids:
        if not 0 <= token < vocab_size:
            raise unknown_id(i, token, f"this model's vocabulary (0 to {vocab_size - 1})", "model")
