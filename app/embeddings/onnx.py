"""The ONNX Runtime encoder: the model's transformer on ORT, its pooling and normalisation after
it (built and guarded by ``app.embeddings.onnx_build``)."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.embeddings.encoder import SentenceEncoder
from app.embeddings.models import ModelSpec

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# ORT's load-time fusions left out: SkipLayerNormalization's CPU kernel costs five times the Add
# and LayerNormalization it fuses (``onnx_build.SKIP_LAYER_NORM``).
SESSION_DISABLED = ["SkipLayerNormFusion"]


class OnnxEncoder(SentenceEncoder):
    """The model's transformer on ONNX Runtime, fed token ids directly; its heads (mean pooling
    and normalising, in numpy; any other heads on the library's own modules) turn its token
    embeddings into sentence vectors."""

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
        self._numpy_heads = _mean_and_normalize(self._heads)
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
            str(self.path),
            options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=SESSION_DISABLED,
        )
        self._inputs = {i.name for i in self.session.get_inputs()}

    def encode(self, batch: list[list[int]]) -> np.ndarray:
        """Run one padded batch: ORT for token embeddings, then the model's heads."""
        if self._alone and self._numpy_heads:
            return np.stack(list(self.encode_rows(batch)))
        input_ids, mask = self.pad(batch)
        if not self._alone:
            tokens = self._run(input_ids, mask)
            if self._numpy_heads:
                weights = mask[:, :, None].astype(np.float32)
                return _normalized((tokens * weights).sum(axis=1) / weights.sum(axis=1))
            return self._torch_heads(input_ids, mask, tokens)
        ends = [len(ids) + 2 for ids in batch]  # each row without its padding
        runs = [
            self._run(input_ids[row : row + 1, :end], mask[row : row + 1, :end])
            for row, end in enumerate(ends)
        ]
        tokens = np.zeros((*input_ids.shape, runs[0].shape[-1]), np.float32)
        for row, (end, out) in enumerate(zip(ends, runs, strict=True)):
            tokens[row, :end] = out[0]
        return self._torch_heads(input_ids, mask, tokens)

    def encode_rows(self, batch: list[list[int]]) -> Generator[np.ndarray, None, None]:
        """Each row's vector in turn, each row run alone (the int8 model's way)."""
        if not (self._alone and self._numpy_heads):
            yield from self.encode(batch)
            return
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        for ids in batch:  # a row alone has no padding: its mean is over all its tokens
            input_ids = np.array([[cls, *ids, sep]], dtype=np.int64)
            tokens = self._run(input_ids, np.ones_like(input_ids))[0]
            yield _normalized(tokens.mean(axis=0, keepdims=True))[0]

    def _torch_heads(
        self, input_ids: np.ndarray, mask: np.ndarray, tokens: np.ndarray
    ) -> np.ndarray:
        """The model's own heads on torch (for heads other than mean pooling and normalising)."""
        torch = self._torch
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


def _mean_and_normalize(heads: list) -> bool:
    """Whether the heads are plain mean pooling then L2 normalising (all-MiniLM-L6-v2's).

    Those run in numpy: the same vectors (within 1e-7), while torch's ops on small tensors
    wake its intra-op thread pool each time, measured at ~1.3 ms of CPU per text on two busy
    cores, as much as the int8 model itself.
    """
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

    return (
        len(heads) == 2
        and type(heads[0]) is Pooling
        and heads[0].pooling_mode in ("mean", ("mean",), ["mean"])
        and type(heads[1]) is Normalize
    )


def _normalized(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as ``torch.nn.functional.normalize`` does."""
    vectors = vectors.astype(np.float32, copy=False)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
