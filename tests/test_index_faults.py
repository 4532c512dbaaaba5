"""A lost or damaged FAISS file: the server still starts, says so, and rebuilds the index from the
vectors stored in SQLite without embedding anything again."""

from __future__ import annotations

import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import faiss
import httpx
import pytest

from tests.support.live import assert_consistent, assert_searchable, ingest, notes
from tests.support.server import running_server

pytestmark = pytest.mark.model

DAMAGE: dict[str, Callable[[Path], object]] = {
    "deleted": lambda path: path.unlink(),
    "truncated": lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
    "garbage": lambda path: path.write_bytes(random.Random(3).randbytes(path.stat().st_size)),
}


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, str]]:
    """A data directory written by a real server, now stopped, and its documents {id: text}."""
    workdir = tmp_path_factory.mktemp("original")
    with running_server(workdir) as (url, _, _):
        documents = ingest(url, notes(random.Random(5), "f", 12))
    return workdir / "data", documents


def tokens_embedded(url: str) -> float:
    """The server's count of tokens its model has embedded since it started."""
    metrics = httpx.get(f"{url}/metrics").text
    return float(re.search(r"^embedsearch_tokens_embedded_total (\S+)$", metrics, re.M)[1])


def index_contents(path: Path) -> tuple[bytes, bytes]:
    """The ids and vectors of an exact index file, as bytes."""
    index = faiss.read_index(str(path))
    vectors = faiss.downcast_index(index.index).reconstruct_n(0, index.ntotal)
    return faiss.vector_to_array(index.id_map).tobytes(), vectors.tobytes()


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_index_file_is_rebuilt_from_sqlite(
    original: tuple[Path, dict[int, str]], tmp_path: Path, damage: str
) -> None:
    source, documents = original
    shutil.copytree(source, tmp_path / "data")
    index_file = next((tmp_path / "data" / "indexes").glob("*.faiss"))
    DAMAGE[damage](index_file)
    with running_server(tmp_path) as (url, _, log):  # it starts: /health answers 200
        # Nothing embedded yet, so the rebuild (done before start-up ended) used stored vectors.
        assert tokens_embedded(url) == 0
        chunks = httpx.get(f"{url}/api/collections").json()["data"][0]["chunks"]
        state = "missing" if damage == "deleted" else "unreadable"
        assert f"was {state}; rebuilt {chunks} vectors from SQLite" in log.read_text()
        assert_searchable(url, documents, {})
    assert index_contents(index_file) == index_contents(next(source.glob("indexes/*.faiss")))
    assert_consistent(tmp_path / "data")
