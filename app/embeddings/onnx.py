"""The ONNX Runtime encoder: the model's transformer on ORT, the library's own pooling and
normalisation after it (built and guarded by ``app.embeddings.onnx_build``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.embeddings.encoder import SentenceEncoder
from app.embeddings.models import ModelSpec

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class OnnxEncoder(SentenceEncoder):
    """The model's transformer on ONNX Runtime, fed token ids directly; the library's own
    Pooling and Normalize modules turn its token embeddings into sentence vectors."""

    def __init__(
        self,
        spec: ModelSpec,
        path: Path,
        threads: int = 0,
        backend: str = "onnx",
        base: SentenceTransformer | None = None,
    ) -> None:
        import onnxruntime as ort
        import torch

        # The torch model is loaded for its tokenizer and its pooling/normalisation modules.
        super().__init__(spec, backend, base)
        self._torch = torch
        self.path = Path(path)
        self._heads = list(self.model)[1:]
        # Dynamic int8 scales activations per tensor, so in a padded batch a text's vector would
        # depend on its batch mates (mean cosine 0.992 alone vs in a batch). Run alone, each
        # sequence gets its own scales: the same vector in any batch. A call runs on one ORT
        # thread, and callers run one call per core at once (``concurrency``): measured faster
        # than one session on two threads.
        self._alone = backend == "onnx-int8"
        self.concurrency = 1
        if self._alone:
            self.concurrency = threads or os.cpu_count() or 1
            threads = 1
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle threads sleep rather than spin (see OMP_WAIT_POLICY in app/__init__.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self.session.get_inputs()}

    def encode(self, batch: list[list[int]]) -> np.ndarray:
        """Run one padded batch: ORT for token embeddings, then the model's own heads."""
        torch = self._torch
        input_ids, mask = self.pad(batch)
        if not self._alone:
            tokens = self._run(input_ids, mask)
        else:  # each row without its padding
            ends = [len(ids) + 2 for ids in batch]
            runs = [
                self._run(input_ids[row : row + 1, :end], mask[row : row + 1, :end])
                for row, end in enumerate(ends)
            ]
            tokens = np.zeros((*input_ids.shape, runs[0].shape[-1]), np.float32)
            for row, (end, out) in enumerate(zip(ends, runs, strict=True)):
                tokens[row, :end] = out[0]
        features = {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(mask),
            "token_embeddings": torch.from_numpy(tokens),
        }
        with torch.inference_mode():
            for module in self._heads:
                features = module(features)
        return features["sentence_embedding"].float().numpy().astype(np.float32, copy=False)

    def _run(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Token embeddings of a padded batch from ONNX Runtime."""
        feeds = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        (tokens,) = self.session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})
        return tokens
