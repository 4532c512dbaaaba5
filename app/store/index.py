"""The vector index interface and its FAISS implementation (exact inner product search)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, Self

import faiss
import numpy as np

from app.errors import BadRequest


class IndexFileError(Exception):
    """An index file that is missing, truncated or not an index."""


class VectorIndex(Protocol):
    """Vectors under explicit int64 ids, searched by cosine similarity."""

    version: int | None

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (or replace) the vectors under these ids."""
        ...

    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids; returns how many were present."""
        ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best (scores, ids) per query, best first; id -1 where there are fewer than k."""
        ...

    def ids(self) -> np.ndarray:
        """Every id in the index."""
        ...

    def __len__(self) -> int:
        """How many vectors the index holds."""
        ...

    def save(self, path: Path) -> None:
        """Write the index and its sidecar atomically."""
        ...

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read an index written by ``save``; IndexFileError if it cannot."""
        ...


class FaissIndex:
    """A flat inner-product FAISS index over L2-normalised vectors, keyed by chunk id."""

    def __init__(self, dimensions: int, version: int | None = None) -> None:
        self.dimensions = dimensions
        # The collection version this index reflects, recorded in the sidecar on save.
        self.version = version
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimensions))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (or replace) the vectors under these ids."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = self._normalised(vectors)
        if len(ids) != len(vectors):
            raise BadRequest(f"Got {len(ids)} ids for {len(vectors)} vectors.")
        # Removing first makes add idempotent: a repair and a late add of the same chunk
        # must not leave two vectors under one id.
        self.remove(ids)
        self._index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids; returns how many were present."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids) or not len(self):
            return 0
        return int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best (scores, ids) per query, best first; id -1 where there are fewer than k."""
        if k < 1:
            raise BadRequest(f"k must be at least 1, got {k}.")
        scores, ids = self._index.search(self._normalised(queries), k)
        return scores, ids

    def ids(self) -> np.ndarray:
        """Every id in the index, in insertion order."""
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def __len__(self) -> int:
        """How many vectors the index holds."""
        return int(self._index.ntotal)

    def save(self, path: Path) -> None:
        """Write the index, then its sidecar, each atomically (temp file, fsync, rename)."""
        path = Path(path)
        _atomic_write(path, lambda tmp: faiss.write_index(self._index, tmp))
        sidecar = {"version": self.version, "count": len(self), "dimensions": self.dimensions}
        _atomic_write(sidecar_path(path), lambda tmp: Path(tmp).write_text(json.dumps(sidecar)))

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read an index written by ``save``; IndexFileError if it is missing or unreadable."""
        path = Path(path)
        if not path.is_file():
            raise IndexFileError(f"Index file {path} does not exist.")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as error:
            raise IndexFileError(f"Index file {path} is truncated or corrupt: {error}") from error
        if not isinstance(index, faiss.IndexIDMap2):
            raise IndexFileError(f"Index file {path} holds a {type(index).__name__}, not ours.")
        loaded = cls(index.d, version=read_sidecar(path).get("version"))
        loaded._index = index
        return loaded

    def _normalised(self, vectors: np.ndarray) -> np.ndarray:
        """A float32 (n, dimensions) copy of ``vectors`` with unit-length rows."""
        vectors = np.array(vectors, dtype=np.float32, ndmin=2, order="C")
        if vectors.ndim != 2 or vectors.shape[1] != self.dimensions:
            raise BadRequest(
                f"Expected vectors of {self.dimensions} dimensions, got shape {vectors.shape}."
            )
        faiss.normalize_L2(vectors)
        return vectors


def sidecar_path(path: Path) -> Path:
    """Where the sidecar JSON for the index file at ``path`` lives."""
    return path.with_suffix(path.suffix + ".json")


def read_sidecar(path: Path) -> dict[str, int | None]:
    """The sidecar of the index file at ``path``; empty if it is missing or unreadable."""
    try:
        data = json.loads(sidecar_path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Write ``path`` via ``write(temp_name)`` so readers see the old file or the new, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.close(fd)
        write(tmp)
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # fsync the directory too, so the rename itself survives a power cut.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
