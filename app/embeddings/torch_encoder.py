"""The torch backend: the sentence-transformers model run as the library runs it."""

from __future__ import annotations

import numpy as np

from app.embeddings.encoder import SentenceEncoder
from app.embeddings.models import ModelSpec


class SentenceTransformerEncoder(SentenceEncoder):
    """A sentence-transformers model on torch, fed token ids directly."""

    def __init__(self, spec: ModelSpec, threads: int = 0) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)  # torch spreads one batch over its own threads
        self._torch = torch
        super().__init__(spec, "torch")

    def encode(self, batch: list[list[int]]) -> np.ndarray:
        """Run one padded batch through the model's own modules (pooling and normalisation)."""
        torch = self._torch
        input_ids, mask = (torch.from_numpy(array) for array in self.pad(batch))
        features = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "token_type_ids": torch.zeros_like(input_ids),
        }
        with torch.inference_mode():
            out = self.model.forward(features)["sentence_embedding"]
        return out.float().numpy().astype(np.float32, copy=False)
