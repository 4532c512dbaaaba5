"""The FAISS index backend: one index file per collection (exact, or IVF past a size)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Self

import faiss
import numpy as np

from app.errors import BadRequest
from app.index.base import IndexLost, VectorIndex
from app.settings import DEFAULTS
from app.store.records import Collection

# Lists per IVF index: nlist ~ sqrt(n) (a power of two).
MIN_NLIST, MAX_NLIST = 256, 4096
TRAIN_PER_LIST = 40  # k-means samples per list (FAISS warns below 39)
FEW_QUERIES = 8  # searches of fewer queries run on one core
CORES = faiss.omp_get_max_threads()  # the default team, before any search set its own


def nlist_for(count: int) -> int:
    """How many inverted lists an IVF index of ``count`` vectors gets."""
    target = max(1.0, float(np.sqrt(count)))
    return int(min(MAX_NLIST, max(MIN_NLIST, 2 ** round(np.log2(target)))))


class FaissIndex:
    """A FAISS inner-product index over L2-normalised vectors, keyed by chunk id.

    Exact (``IndexIDMap2(IndexFlatIP)``) up to ``exact_max`` vectors; past that it is rebuilt as
    an ``IndexIVFFlat`` (its own ids, so removal works) trained on the vectors it holds at that
    moment, and retrained when it has grown fourfold since. It goes back to exact search below
    half the threshold. IVFFlat keeps the raw vectors, so switching either way loses nothing.
    """

    def __init__(
        self,
        dimensions: int,
        version: int | None = None,
        *,
        exact_max: int = DEFAULTS.index_exact_max,
        nprobe: int = DEFAULTS.index_nprobe,
    ) -> None:
        self.dimensions = dimensions
        # The collection version this index reflects, recorded in the sidecar on save.
        self.version = version
        self.exact_max = exact_max
        self.nprobe = nprobe
        self.trained_on = 0  # vectors the IVF quantizer was trained on (0 while exact)
        self._index: faiss.Index = _flat(dimensions)

    @property
    def kind(self) -> str:
        """ "flat" (exact) or "ivf" (approximate)."""
        return "ivf" if isinstance(self._index, faiss.IndexIVF) else "flat"

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (or replace) the vectors under these ids."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = self._normalised(vectors)
        if len(ids) != len(vectors):
            raise BadRequest(f"Got {len(ids)} ids for {len(vectors)} vectors.")
        # Removing first makes add idempotent: a repair and a late add of the same chunk
        # must not leave two vectors under one id.
        self.remove(ids)
        total = len(self) + len(ids)
        # Crossing the threshold, or outgrowing the lists it was trained for: rebuild.
        limit = self.exact_max if self.kind == "flat" else 4 * self.trained_on
        if total > limit:
            all_ids, all_vectors = self._contents()
            self._switch(np.concatenate([all_ids, ids]), np.concatenate([all_vectors, vectors]))
        else:
            self._index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids; returns how many were present."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids) or not len(self):
            return 0
        removed = int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))
        if self.kind == "ivf" and len(self) < self.exact_max // 2:
            self._switch(*self._contents())
        return removed

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best (scores, ids) per query, best first; id -1 where there are fewer than k."""
        if k < 1:
            raise BadRequest(f"k must be at least 1, got {k}.")
        queries = self._normalised(queries)
        # For this thread only: a few queries search on one core, as a team of threads waits on
        # cores the model and the other requests hold (50k exact vectors, one query, load average
        # 3.5 on 2 cores: p50 74 ms with 2 threads, 22 ms with 1); batches keep every core.
        faiss.omp_set_num_threads(1 if len(queries) < FEW_QUERIES else CORES)
        if self.kind == "ivf":
            params = faiss.SearchParametersIVF(nprobe=self.nprobe)
            return self._index.search(queries, k, params=params)
        return self._index.search(queries, k)

    def ids(self) -> np.ndarray:
        """Every id in the index (in insertion order while exact)."""
        if self.kind == "flat":
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        return self._ivf_contents(with_vectors=False)[0]

    def __len__(self) -> int:
        """How many vectors the index holds."""
        return int(self._index.ntotal)

    def copy(self) -> FaissIndex:
        """An independent copy (FAISS copies every vector)."""
        twin = FaissIndex(
            self.dimensions, self.version, exact_max=self.exact_max, nprobe=self.nprobe
        )
        twin.trained_on = self.trained_on
        twin._index = faiss.clone_index(self._index)
        return twin

    def save(self, path: Path) -> None:
        """Write the index, then its sidecar, each atomically (temp file, fsync, rename)."""
        path = Path(path)
        _atomic_write(path, lambda tmp: faiss.write_index(self._index, tmp))
        sidecar = {"version": self.version, "count": len(self), "dimensions": self.dimensions}
        _atomic_write(sidecar_path(path), lambda tmp: Path(tmp).write_text(json.dumps(sidecar)))

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        exact_max: int = DEFAULTS.index_exact_max,
        nprobe: int = DEFAULTS.index_nprobe,
    ) -> Self:
        """Read an index written by ``save``; IndexLost if it is missing or unreadable."""
        path = Path(path)
        if not path.is_file():
            raise IndexLost(f"Index file {path} does not exist.", "missing")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as error:
            raise IndexLost(f"Index file {path} is truncated or corrupt: {error}") from error
        ours = isinstance(index, faiss.IndexIDMap2) or (
            isinstance(index, faiss.IndexIVFFlat)
            and index.metric_type == faiss.METRIC_INNER_PRODUCT
        )
        if not ours:
            raise IndexLost(f"Index file {path} holds a {type(index).__name__}, not ours.")
        version = read_sidecar(path).get("version")
        loaded = cls(index.d, version=version, exact_max=exact_max, nprobe=nprobe)
        loaded._index = index
        if loaded.kind == "ivf":
            loaded.trained_on = int(index.ntotal)  # retrains once it has grown fourfold from here
        return loaded

    def _switch(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Rebuild as the kind of index that fits ``len(ids)`` vectors, holding exactly these."""
        if len(ids) > self.exact_max:
            nlist = nlist_for(len(ids))
            index = faiss.IndexIVFFlat(
                faiss.IndexFlatIP(self.dimensions),
                self.dimensions,
                nlist,
                faiss.METRIC_INNER_PRODUCT,
            )
            index.cp.niter = 10
            sample = len(ids) if len(ids) <= TRAIN_PER_LIST * nlist else TRAIN_PER_LIST * nlist
            rng = np.random.default_rng(len(ids))  # deterministic for a given size
            chosen = np.sort(rng.choice(len(ids), size=sample, replace=False))
            index.train(np.ascontiguousarray(vectors[chosen]))
            self.trained_on = len(ids)
        else:
            index = _flat(self.dimensions)
            self.trained_on = 0
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vectors), np.ascontiguousarray(ids))
        self._index = index

    def _contents(self) -> tuple[np.ndarray, np.ndarray]:
        """Every (id, vector) the index holds, as two arrays."""
        if self.kind == "flat":
            ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            flat = faiss.downcast_index(self._index.index)
            vectors = faiss.rev_swig_ptr(flat.get_xb(), len(ids) * self.dimensions)
            return ids, np.array(vectors, dtype=np.float32).reshape(len(ids), self.dimensions)
        return self._ivf_contents(with_vectors=True)

    def _ivf_contents(self, with_vectors: bool) -> tuple[np.ndarray, np.ndarray]:
        """Ids (and raw vectors) of every inverted list of the IVFFlat index."""
        invlists = self._index.invlists
        ids, vectors = [], []
        for list_no in range(invlists.nlist):
            size = invlists.list_size(list_no)
            if not size:
                continue
            ids.append(np.array(faiss.rev_swig_ptr(invlists.get_ids(list_no), size)))
            if with_vectors:
                codes = faiss.rev_swig_ptr(invlists.get_codes(list_no), size * invlists.code_size)
                vectors.append(np.frombuffer(bytes(codes), dtype=np.float32))
        all_ids = np.concatenate(ids).astype(np.int64) if ids else np.empty(0, np.int64)
        if not with_vectors:
            return all_ids, np.empty((0, self.dimensions), np.float32)
        flat = np.concatenate(vectors) if vectors else np.empty(0, np.float32)
        return all_ids, flat.reshape(-1, self.dimensions)

    def _normalised(self, vectors: np.ndarray) -> np.ndarray:
        """A float32 (n, dimensions) copy of ``vectors`` with unit-length rows."""
        vectors = np.array(vectors, dtype=np.float32, ndmin=2, order="C")
        if vectors.ndim != 2 or vectors.shape[1] != self.dimensions:
            raise BadRequest(
                f"Expected vectors of {self.dimensions} dimensions, got shape {vectors.shape}."
            )
        faiss.normalize_L2(vectors)
        return vectors


class FaissFiles:
    """FAISS indexes in memory, saved as one file (and sidecar) per collection in a directory."""

    name = "faiss"

    def __init__(
        self,
        directory: Path | None,
        *,
        exact_max: int = DEFAULTS.index_exact_max,
        nprobe: int = DEFAULTS.index_nprobe,
    ) -> None:
        # None keeps indexes in memory only (tests); they are rebuilt from SQLite on first use.
        self.directory = directory
        # Past exact_max vectors an index turns approximate (IVF), searched with nprobe lists.
        self.options = {"exact_max": exact_max, "nprobe": nprobe}

    def path(self, collection_id: int) -> Path | None:
        """Where the collection's index file lives (None when in memory only)."""
        return None if self.directory is None else self.directory / f"{collection_id}.faiss"

    def open(self, collection: Collection) -> FaissIndex:
        """The collection's index file; IndexLost if it is missing, unreadable or not for it."""
        path = self.path(collection.id)
        if path is None:
            raise IndexLost("Indexes are kept in memory only.", "missing")
        index = FaissIndex.load(path, **self.options)
        # A file from another collection or model is as useless as a corrupt one.
        if index.dimensions != collection.dimensions:
            raise IndexLost(f"Index file {path} holds {index.dimensions}-dimensional vectors.")
        return index

    def create(self, collection: Collection) -> FaissIndex:
        """A new empty index (written on save)."""
        return FaissIndex(collection.dimensions, **self.options)

    def snapshot(self, index: VectorIndex) -> VectorIndex:
        """A copy to write while searches and writes go on with the index (none in memory)."""
        assert isinstance(index, FaissIndex)
        return index if self.directory is None else index.copy()

    def save(self, collection: Collection, index: VectorIndex) -> None:
        """Write the index file if this backend keeps files."""
        assert isinstance(index, FaissIndex)  # a backend only saves the indexes it made
        path = self.path(collection.id)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            index.save(path)

    def close(self) -> None:
        """Nothing to release: files are written on save."""

    def describe(self, collection_id: int) -> str:
        """The index file's path (or "memory")."""
        return str(self.path(collection_id) or "memory")


def _flat(dimensions: int) -> faiss.Index:
    """An empty exact inner-product index under explicit ids."""
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dimensions))


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
