"""Encoders turn token ids into vectors; the engine batches work for them."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from app.embeddings.models import ModelSpec

PIECE_ROWS = 8  # rows per call when encode_batches spreads rows over workers


class Encoder(Protocol):
    """What the engine needs of a model: its tokenizer's ids in, normalised float32 out."""

    dimensions: int
    max_tokens: int  # content tokens that fit the window, special tokens excluded
    backend: str  # what runs the model: torch, onnx or onnx-int8
    vocab_size: int
    tokenizer: Any  # the model's own Hugging Face tokenizer; chunking counts with it
    concurrency: int  # calls to encode() worth running at once, each from its own thread

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens and untruncated."""
        ...

    def encode(self, batch: list[list[int]]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per id sequence (each fits the window)."""
        ...


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


class SentenceTransformerEncoder:
    """A sentence-transformers model on torch, fed token ids directly."""

    backend = "torch"
    requested_backend = "torch"
    fallback: str | None = None  # why a requested ONNX backend is not the one running
    concurrency = 1  # torch spreads one batch over its own threads

    def __init__(self, spec: ModelSpec, threads: int = 0) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub at run time
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()  # keep the server log readable

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.model = SentenceTransformer(spec.path, device="cpu")
        self.model.eval()
        self.tokenizer = self.model.tokenizer
        self.dimensions = int(self.model.get_embedding_dimension())
        self.max_tokens = int(self.model.max_seq_length) - 2
        self.vocab_size = int(self.tokenizer.vocab_size)

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens and untruncated."""
        return self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]

    def encode(self, batch: list[list[int]]) -> np.ndarray:
        """Run one padded batch through the model's own modules (pooling and normalisation)."""
        torch = self._torch
        width = max(len(ids) for ids in batch) + 2
        input_ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        pad = self.tokenizer.pad_token_id
        input_ids.fill_(pad)
        for row, ids in enumerate(batch):
            seq = [cls, *ids, sep]
            input_ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        features = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "token_type_ids": torch.zeros_like(input_ids),
        }
        with torch.inference_mode():
            out = self.model.forward(features)["sentence_embedding"]
        return out.float().numpy().astype(np.float32, copy=False)
