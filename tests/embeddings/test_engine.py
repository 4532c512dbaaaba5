"""The engine: validation, ordering, and batching across concurrent requests (fake encoder)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from app.embeddings.engine import Engine
from app.embeddings.models import ModelRegistry, bundled_minilm
from app.errors import BadRequest, NotFound
from tests.fakes import FakeEncoder


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
