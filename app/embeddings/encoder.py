"""Encoders turn token ids into vectors; the engine batches work for them."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from app.embeddings.models import ModelSpec

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

PIECE_ROWS = 8  # rows per call when encode_batches spreads rows over workers
# Most tokens in one engine round of an encoder that runs rows alone (a longer row goes alone):
# one ingestion chunk (~7 ms of a core for int8) or eight short texts. A search waits for the
# rounds in flight to end; with eight rows of 200 tokens, a round took ~55 ms of a core. A round
# costs ~0.05 ms of its own, under 1% of a chunk's.
ROUND_TOKENS_ALONE = 256


class Encoder(Protocol):
    """What the engine needs of a model: its tokenizer's ids in, normalised float32 out."""

    dimensions: int
    max_tokens: int  # content tokens that fit the window, special tokens excluded
    backend: str  # what runs the model: torch, onnx or onnx-int8
    requested_backend: str  # what the settings asked for
    fallback: str | None  # why the requested backend is not the one running, if it is not
    vocab_size: int
    tokenizer: Any  # the model's own Hugging Face tokenizer; chunking counts with it
    concurrency: int  # calls to encode() worth running at once, each from its own thread

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens and untruncated."""
        ...

    def encode(self, batch: list[list[int]]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per id sequence (each fits the window)."""
        ...


# An encoder that runs rows alone (``concurrency`` > 1) may also offer ``encode_rows(batch)``:
# each row's vector in turn, as it is done, so that the engine can stop between rows.
EncodeRows = Callable[[list[list[int]]], Generator[np.ndarray, None, None]]


def encode_batches(encoder: Encoder, batches: list[list[list[int]]]) -> list[np.ndarray]:
    """Each batch's vectors, in order, running ``encoder.concurrency`` calls at once.

    An encoder with several workers runs each row alone (its batches do not change its vectors),
    so the rows are re-cut into small pieces that the workers take in turn and finish together.
    """
    if encoder.concurrency == 1:
        return [encoder.encode(batch) for batch in batches]
    rows = [seq for batch in batches for seq in batch]
    pieces = [rows[i : i + PIECE_ROWS] for i in range(0, len(rows), PIECE_ROWS)]
    with ThreadPoolExecutor(encoder.concurrency) as pool:
        vectors = np.concatenate(list(pool.map(encoder.encode, pieces)))
    ends = np.cumsum([len(batch) for batch in batches])[:-1]
    return np.split(vectors, ends)


class SentenceEncoder:
    """What the bundled backends share: a sentence-transformers model's tokenizer and window, and
    token ids laid out as padded ``[CLS] ids [SEP]`` rows."""

    fallback: str | None = None
    concurrency = 1

    def __init__(
        self, spec: ModelSpec, backend: str, base: SentenceTransformer | None = None
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub at run time
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()  # keep the server log readable
        self.backend = self.requested_backend = backend
        self.model = base if base is not None else SentenceTransformer(spec.path, device="cpu")
        self.model.eval()
        self.tokenizer = self.model.tokenizer
        dimensions, window = self.model.get_embedding_dimension(), self.model.max_seq_length
        if dimensions is None or window is None:
            raise ValueError(f"{spec.path} does not declare its embedding size and token window.")
        self.dimensions = dimensions
        self.max_tokens = window - 2
        self.vocab_size = int(self.tokenizer.vocab_size)
        self._fast = copy.deepcopy(self.tokenizer.backend_tokenizer)  # ours to configure
        self._fast.no_truncation()
        self._fast.no_padding()

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens and untruncated."""
        # The Rust tokenizer itself, without transformers' per-call wrapper: the same ids at
        # about half the CPU, on the event loop's thread for every request.
        encodings = self._fast.encode_batch(texts, add_special_tokens=False)
        return [encoding.ids for encoding in encodings]

    def pad(self, batch: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """int64 input ids (``[CLS] ids [SEP]``, then padding) and attention mask of a batch."""
        width = max(len(ids) for ids in batch) + 2
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        input_ids = np.full((len(batch), width), self.tokenizer.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids) + 2] = [cls, *ids, sep]
            mask[row, : len(ids) + 2] = 1
        return input_ids, mask
