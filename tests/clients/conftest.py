"""The client libraries' tests: one real server (the session's), the libraries offline."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import openai
import pytest

from tests.support.api import API_KEY
from tests.support.clients import MODEL, TEXTS
from tests.support.offline import refuse_remote, tiktoken_cache

# Read when the libraries are imported, so set before the test modules import them: LiteLLM
# would fetch its model price map, Haystack would send telemetry.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")


@pytest.fixture(scope="package", autouse=True)
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """tiktoken reads cl100k_base from a local cache; nothing beyond loopback is reachable."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIKTOKEN_CACHE_DIR", str(tiktoken_cache(tmp_path_factory.mktemp("tiktoken"))))
        refuse_remote(patch)
        yield


@pytest.fixture(scope="package")
def base_url(live_server) -> str:
    """The server's OpenAI-compatible base URL."""
    return f"{live_server[0]}/v1"


@pytest.fixture(scope="package")
def reference(base_url: str) -> np.ndarray:
    """The openai client's vectors for TEXTS: what every other client must reproduce."""
    client = openai.OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)
    result = client.embeddings.create(model=MODEL, input=TEXTS)
    return np.array([item.embedding for item in result.data])
