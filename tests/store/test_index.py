"""FaissIndex: exact search against a numpy ground truth, removal, and persistence."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from app.errors import BadRequest
from app.index.base import IndexLost
from app.index.faiss import FaissIndex, sidecar_path
from tests.support.documents import unit_vectors

DIMENSIONS = 32
Filled = tuple[FaissIndex, np.ndarray, np.ndarray]


@pytest.fixture
def filled(rng: np.random.Generator) -> Filled:
    """An index of 1000 vectors under sparse, shuffled ids, with those ids and vectors."""
    ids = rng.choice(10**9, size=1000, replace=False).astype(np.int64)
    vectors = unit_vectors(rng, 1000, DIMENSIONS)
    index = FaissIndex(DIMENSIONS)
    index.add(ids, vectors)
    return index, ids, vectors


def brute_force(ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The ids of the k highest inner products per query, computed with numpy."""
    return ids[np.argsort(-(queries @ vectors.T), axis=1)[:, :k]]


def test_search_matches_brute_force(filled: Filled, rng: np.random.Generator) -> None:
    index, ids, vectors = filled
    queries = unit_vectors(rng, 25, DIMENSIONS)
    scores, found = index.search(queries, 10)
    np.testing.assert_array_equal(found, brute_force(ids, vectors, queries, 10))
    expected = np.sort(queries @ vectors.T, axis=1)[:, ::-1][:, :10]
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)


def test_vectors_are_normalised_so_scores_are_cosines(rng: np.random.Generator) -> None:
    index = FaissIndex(4)
    index.add(np.array([1, 2]), np.array([[10.0, 0, 0, 0], [1.0, 1.0, 0, 0]]))
    scores, ids = index.search(np.array([3.0, 0, 0, 0]), 2)
    assert ids.tolist() == [[1, 2]]
    np.testing.assert_allclose(scores, [[1.0, np.sqrt(0.5)]], rtol=1e-6)


def test_fewer_results_than_k_are_padded_with_minus_one() -> None:
    index = FaissIndex(4)
    assert index.search(np.ones(4), 3)[1].tolist() == [[-1, -1, -1]]
    index.add(np.array([7]), np.ones((1, 4)))
    assert index.search(np.ones(4), 3)[1].tolist() == [[7, -1, -1]]


def test_remove_drops_ids_from_results(filled: Filled, rng: np.random.Generator) -> None:
    index, ids, vectors = filled
    gone = ids[:100]
    assert index.remove(np.concatenate([gone, [-5, 123]])) == 100
    assert len(index) == 900
    assert set(index.ids().tolist()) == set(ids[100:].tolist())
    queries = vectors[:20]  # the removed vectors themselves
    _, found = index.search(queries, 5)
    assert not set(found.ravel().tolist()) & set(gone.tolist())
    np.testing.assert_array_equal(found, brute_force(ids[100:], vectors[100:], queries, 5))


def test_add_replaces_an_existing_id(rng: np.random.Generator) -> None:
    index = FaissIndex(DIMENSIONS)
    first, second = unit_vectors(rng, 2, DIMENSIONS)
    index.add(np.array([42]), first[None])
    index.add(np.array([42]), second[None])
    assert len(index) == 1
    scores, ids = index.search(second, 1)
    assert ids.tolist() == [[42]] and scores[0, 0] == pytest.approx(1.0, abs=1e-6)


def test_wrong_shapes_and_k_are_bad_requests() -> None:
    index = FaissIndex(4)
    with pytest.raises(BadRequest, match="4 dimensions"):
        index.add(np.array([1]), np.ones((1, 5)))
    with pytest.raises(BadRequest, match="2 ids for 1 vectors"):
        index.add(np.array([1, 2]), np.ones((1, 4)))
    with pytest.raises(BadRequest, match="4 dimensions"):
        index.search(np.ones(3), 1)
    with pytest.raises(BadRequest, match="k must be"):
        index.search(np.ones(4), 0)
    assert len(index) == 0


def test_save_load_round_trip(filled: Filled, tmp_path: Path, rng: np.random.Generator) -> None:
    index, ids, _ = filled
    index.version = 17
    path = tmp_path / "1.faiss"
    index.save(path)

    loaded = FaissIndex.load(path)
    assert (loaded.version, loaded.dimensions, len(loaded)) == (17, DIMENSIONS, 1000)
    np.testing.assert_array_equal(np.sort(loaded.ids()), np.sort(ids))
    queries = unit_vectors(rng, 5, DIMENSIONS)
    np.testing.assert_array_equal(loaded.search(queries, 8)[1], index.search(queries, 8)[1])
    assert json.loads(sidecar_path(path).read_text()) == {
        "version": 17,
        "count": 1000,
        "dimensions": DIMENSIONS,
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.faiss", "1.faiss.json"]


def test_save_replaces_the_previous_file(filled: Filled, tmp_path: Path) -> None:
    index, ids, _ = filled
    path = tmp_path / "1.faiss"
    index.save(path)
    index.remove(ids[:500])
    index.save(path)
    assert len(FaissIndex.load(path)) == 500
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.faiss", "1.faiss.json"]


def test_load_without_sidecar_has_unknown_version(filled: Filled, tmp_path: Path) -> None:
    index, _, _ = filled
    path = tmp_path / "1.faiss"
    index.save(path)
    sidecar_path(path).write_text("{not json")
    assert FaissIndex.load(path).version is None


@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage", "empty"])
def test_load_of_a_damaged_file_raises_index_file_error(
    filled: Filled, tmp_path: Path, damage: str
) -> None:
    index, _, _ = filled
    path = tmp_path / "1.faiss"
    index.save(path)
    data = path.read_bytes()
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00not a faiss index at all" * 100)
    else:
        path.write_bytes(b"")
    with pytest.raises(IndexLost, match=str(path)):
        FaissIndex.load(path)


def test_load_of_another_kind_of_faiss_index_raises(tmp_path: Path) -> None:
    path = tmp_path / "1.faiss"
    faiss.write_index(faiss.IndexFlatIP(4), str(path))
    with pytest.raises(IndexLost, match="IndexFlat"):
        FaissIndex.load(path)
