"""The engine: validation, ordering, and batching across concurrent requests (fake encoder)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from app.embeddings.encoder import PIECE_ROWS, ROUND_TOKENS_ALONE, encode_batches
from app.embeddings.engine import Engine
from app.embeddings.models import ModelRegistry, bundled_minilm
from app.embeddings.queue import Priority
from app.errors import BadRequest, NotFound
from app.priority import MAX_NICE, PER_THREAD, thread_nice
from tests.support.fakes import FakeEncoder


@pytest.fixture
def fake() -> FakeEncoder:
    return FakeEncoder(delay=threading.Event())


@pytest.fixture
def engine(fake: FakeEncoder):
    engine = Engine(ModelRegistry([bundled_minilm()]), lambda spec: fake, batch_tokens=4096)
    engine.start()
    yield engine
    fake.gate.set()
    engine.stop()


def test_rows_come_back_in_input_order(engine: Engine, fake: FakeEncoder) -> None:
    fake.gate.set()
    texts = ["a much longer text with many words in it", "short", "medium length text"]
    result = engine.embed(texts)
    alone = np.stack([engine.embed(t).vectors[0] for t in texts])
    assert np.allclose(result.vectors, alone, atol=1e-6)
    assert result.model == "all-MiniLM-L6-v2"


def test_concurrent_requests_share_batches(engine: Engine, fake: FakeEncoder) -> None:
    with ThreadPoolExecutor(16) as pool:
        blocker = pool.submit(engine.embed, "the model is busy with me")
        assert fake.entered.wait(5)
        futures = [pool.submit(engine.embed, [f"text {i}", f"other {i}"]) for i in range(15)]
        while len(engine._queue) < 30:  # all fifteen requests are waiting
            threading.Event().wait(0.005)
        fake.gate.set()
        results = [f.result() for f in futures]
        blocker.result()
    assert max(fake.batches) == 30  # fifteen requests went through the model together
    for i, result in enumerate(results):
        assert np.allclose(result.vectors[0], engine.embed(f"text {i}").vectors[0], atol=1e-6)


def test_batches_respect_the_token_budget(fake: FakeEncoder) -> None:
    fake.gate.set()
    engine = Engine(ModelRegistry([bundled_minilm()]), lambda spec: fake, batch_tokens=64)
    engine.start()
    try:
        engine.embed(["word " * 20] * 10)  # 22 tokens padded each: at most 2 per batch
    finally:
        engine.stop()
    assert fake.batches == [2] * 5


def test_dimensions_cut_and_renormalise(engine: Engine, fake: FakeEncoder) -> None:
    fake.gate.set()
    full = engine.embed("hello").vectors[0]
    cut = engine.embed("hello", dimensions=8).vectors[0]
    assert np.allclose(cut, full[:8] / np.linalg.norm(full[:8]), atol=1e-6)
    with pytest.raises(BadRequest):
        engine.embed("hello", dimensions=33)


def test_unknown_model(engine: Engine) -> None:
    with pytest.raises(NotFound):
        engine.embed("x", model="nope")


def test_prompt_tokens_count_full_input(engine: Engine, fake: FakeEncoder) -> None:
    fake.gate.set()
    assert engine.embed("word " * 300).prompt_tokens == 300
    assert engine.embed([1, 2, 3]).prompt_tokens == 3


class ConcurrentFake(FakeEncoder):
    """A fake that, like onnx-int8, can run two batches at once; counts batches entered."""

    concurrency = 2

    def __init__(self) -> None:
        super().__init__(delay=threading.Event())
        self.inside = threading.Semaphore(0)

    def encode(self, batch: list[list[int]]) -> np.ndarray:
        self.inside.release()
        return super().encode(batch)


def test_an_encoder_running_batches_at_once_gets_as_many_workers() -> None:
    fake = ConcurrentFake()
    engine = Engine(ModelRegistry([bundled_minilm()]), lambda spec: fake, batch_tokens=64)
    engine.start()
    texts = [f"word {i} " * 10 for i in range(20)]  # 22 tokens each: more than one round
    pool = ThreadPoolExecutor(2)
    try:
        first = pool.submit(engine.embed, "held at the gate")
        assert fake.inside.acquire(timeout=5)
        second = pool.submit(engine.embed, texts)
        assert fake.inside.acquire(timeout=5)  # a second batch ran while the first waited
        fake.gate.set()
        first.result(timeout=5)
        result = second.result(timeout=5)
        alone = np.stack([engine.embed(text).vectors[0] for text in texts])
    finally:
        fake.gate.set()
        pool.shutdown()
        engine.stop()
    # The request's rows came from batches run by both workers, and are all in their place.
    assert np.allclose(result.vectors, alone, atol=1e-6)


class NiceFake(FakeEncoder):
    """A fake that, like onnx-int8, runs two batches at once, and notes each thread's nice."""

    concurrency = 2

    def __init__(self) -> None:
        super().__init__()
        self.nice: set[int] = set()

    def encode(self, batch: list[list[int]]) -> np.ndarray:
        self.nice.add(thread_nice())
        return super().encode(batch)


@pytest.mark.skipif(not PER_THREAD, reason="per-thread nice is Linux's")
def test_the_model_runs_below_the_callers_priority() -> None:
    fake = NiceFake()
    engine = Engine(ModelRegistry([bundled_minilm()]), lambda spec: fake, batch_tokens=64, nice=3)
    engine.start()
    caller = thread_nice()
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(engine.embed, [f"text {i} " * 20 for i in range(40)]))
    finally:
        engine.stop()
    assert fake.nice == {min(MAX_NICE, caller + 3)}
    assert thread_nice() == caller


def test_each_worker_takes_its_share_of_the_queue() -> None:
    fake = ConcurrentFake()
    engine = Engine(ModelRegistry([bundled_minilm()]), lambda spec: fake, batch_tokens=4096)
    engine.start()
    pool = ThreadPoolExecutor(2)
    try:
        first = pool.submit(engine.embed, "held at the gate")
        assert fake.inside.acquire(timeout=5)
        second = pool.submit(engine.embed, [f"text number {i}" for i in range(12)])
        assert fake.inside.acquire(timeout=5)
        fake.gate.set()
        first.result(timeout=5)
        second.result(timeout=5)
    finally:
        fake.gate.set()
        pool.shutdown()
        engine.stop()
    # The idle worker took half of the twelve, not all: the other half waits for whichever
    # worker is free first, so both finish together.
    assert max(fake.batches) == 6 and sum(fake.batches) == 13


def test_an_encoder_running_rows_alone_takes_a_few_rows_at_a_time() -> None:
    fake = ConcurrentFake()
    fake.gate.set()
    engine = Engine(ModelRegistry([bundled_minilm()]), lambda spec: fake, batch_tokens=4096)
    engine.start()
    try:
        engine.embed([f"text number {i}" for i in range(100)])
    finally:
        engine.stop()
    # Small batches hand rows back steadily and let an urgent request in between them.
    assert max(fake.batches) == PIECE_ROWS and sum(fake.batches) == 100


def test_long_rows_go_a_few_at_a_time_so_a_search_waits_little() -> None:
    fake = ConcurrentFake()
    fake.gate.set()
    engine = Engine(ModelRegistry([bundled_minilm()]), lambda spec: fake, batch_tokens=4096)
    engine.start()
    try:
        engine.embed([" ".join(["word"] * 200)] * 20, priority=Priority.BULK)
    finally:
        engine.stop()
    # 202 tokens a row with [CLS] and [SEP]: a round holds at most ROUND_TOKENS_ALONE.
    assert max(fake.batches) == max(1, ROUND_TOKENS_ALONE // 202) and sum(fake.batches) == 20


def test_searches_go_before_api_calls_before_ingestion(engine: Engine, fake: FakeEncoder) -> None:
    order: list[str] = []
    encode = fake.encode

    def recording(batch: list[list[int]]) -> np.ndarray:
        order.append(fake.tokenizer.decode(batch[0][:1]))
        return encode(batch)

    fake.encode = recording
    with ThreadPoolExecutor(4) as pool:
        blocker = pool.submit(engine.embed, "busy")
        assert fake.entered.wait(5)
        futures = []
        lanes = [("bulk", Priority.BULK), ("api", Priority.API), ("search", Priority.SEARCH)]
        for name, priority in lanes:
            futures.append(pool.submit(engine.embed, f"{name} text", priority=priority))
            while len(engine._queue) < len(futures):
                threading.Event().wait(0.005)
        fake.gate.set()
        for future in [blocker, *futures]:
            future.result()
    assert order == ["busy", "search", "api", "bulk"]


def test_async_callers_get_their_rows_and_a_departed_one_is_skipped(
    engine: Engine, fake: FakeEncoder
) -> None:
    async def scenario() -> tuple[np.ndarray, list]:
        busy = asyncio.ensure_future(engine.aembed("the model is busy with me"))
        await asyncio.to_thread(fake.entered.wait, 5)
        leaving = asyncio.ensure_future(engine.aembed("a client that hangs up"))
        staying = [asyncio.ensure_future(engine.aembed(f"text {i}")) for i in range(3)]
        while len(engine._queue) < 4:
            await asyncio.sleep(0.005)
        leaving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await leaving
        fake.gate.set()
        results = await asyncio.gather(busy, *staying)
        return results[1].vectors[0], fake.batches

    first, batches = asyncio.run(scenario())
    assert np.allclose(first, engine.embed("text 0").vectors[0], atol=1e-6)
    assert batches[:2] == [1, 3]  # the departed client's input never reached the model


def test_encode_batches_spreads_rows_over_workers_and_keeps_batches_apart() -> None:
    fake = ConcurrentFake()
    fake.gate.set()
    batches = [
        fake.tokenize([f"text {i} of batch {b}" for i in range(n)])
        for b, n in enumerate((3, 20, 1))
    ]
    vectors = encode_batches(fake, batches)
    assert [len(v) for v in vectors] == [3, 20, 1]
    for got, batch in zip(vectors, batches, strict=True):
        assert np.allclose(got, fake.encode(batch), atol=1e-6)
    assert fake.batches[:3] == [PIECE_ROWS] * 3  # 24 rows went out in pieces, not as batches


class RowsFake(ConcurrentFake):
    """A fake running rows alone, like onnx-int8: it hands back each row's vector in turn."""

    def __init__(self) -> None:
        super().__init__()
        self.gate.set()
        self.row_gate = threading.Event()
        self.rows_started = threading.Semaphore(0)
        self.done: list[str] = []

    def encode_rows(self, batch: list[list[int]]) -> Generator[np.ndarray, None, None]:
        for ids in batch:
            self.rows_started.release()
            self.row_gate.wait(10)
            self.done.append(self.tokenizer.decode(ids[:1]))
            yield self.encode([ids])[0]


def test_an_api_call_cuts_into_a_round_of_bulk_rows_between_two_rows() -> None:
    fake = RowsFake()
    engine = Engine(ModelRegistry([bundled_minilm()]), lambda spec: fake, batch_tokens=4096)
    engine.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            texts = [f"bulk text {i}" for i in range(16)]
            bulk = pool.submit(engine.embed, texts, priority=Priority.BULK)
            for _ in range(2):  # both workers are inside a round of bulk rows
                assert fake.rows_started.acquire(timeout=5)
            call = pool.submit(engine.embed, "api text", priority=Priority.API)
            while not engine._queue.lanes[Priority.API]:
                threading.Event().wait(0.005)
            fake.row_gate.set()
            vectors = bulk.result(10).vectors
            call.result(10)
    finally:
        engine.stop()
    # Each worker finished the row it was running, then the API call went next, not after the
    # rest of the round; the bulk rows put back still came out right and in their places.
    assert "api" in fake.done[:3] and len(fake.done) == 17
    assert np.allclose(vectors, fake.encode(fake.tokenize(texts)), atol=1e-6)


def test_a_search_runs_on_its_own_thread_while_the_workers_are_busy() -> None:
    fake = RowsFake()
    engine = Engine(ModelRegistry([bundled_minilm()]), lambda spec: fake, batch_tokens=4096)
    engine.start()
    try:
        with ThreadPoolExecutor(1) as pool:
            bulk = pool.submit(
                engine.embed, [f"bulk {i}" for i in range(8)], priority=Priority.BULK
            )
            for _ in range(2):  # both workers are held inside a round of bulk rows
                assert fake.rows_started.acquire(timeout=5)
            found = engine.embed("search text", priority=Priority.SEARCH)
            assert not bulk.done()  # the search did not wait for them
            fake.row_gate.set()
            bulk.result(10)
    finally:
        fake.row_gate.set()
        engine.stop()
    assert np.allclose(found.vectors, fake.encode(fake.tokenize(["search text"])), atol=1e-6)
