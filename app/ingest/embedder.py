"""Where ingestion and search get vectors: the in-process engine or a remote OpenAI-compatible URL."""

from __future__ import annotations

import base64
from typing import Protocol

import httpx
import numpy as np

from app.embeddings.engine import Engine
from app.embeddings.queue import Priority
from app.errors import RateLimited, ServiceUnavailable


class Embedder(Protocol):
    """Texts in, L2-normalised float32 vectors out, from one model."""

    model: str

    @property
    def backend(self) -> str:
        """The runtime serving the model."""
        ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """One row per text."""
        ...


class LocalEmbedder:
    """The app's own engine: the same queue and batching the HTTP endpoint uses."""

    def __init__(self, engine: Engine, model: str, priority: Priority = Priority.SEARCH) -> None:
        self.engine = engine
        self.model = engine.spec(model).id
        self.priority = priority

    @property
    def backend(self) -> str:
        """The runtime actually serving the model (torch, onnx or onnx-int8)."""
        return self.engine.encoder(self.model).backend

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed through the engine's queue."""
        return self.engine.embed(texts, self.model, priority=self.priority).vectors


class RemoteEmbedder:
    """Another OpenAI-compatible embeddings service (another embedsearch, for one)."""

    backend = "remote"

    def __init__(self, url: str, key: str | None, model: str, batch: int = 256) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.requested = model
        self.model = model
        self.batch = batch

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed in requests of at most ``batch`` texts, asking for base64 (compact)."""
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=300) as client:
            parts = [
                self._request(client, texts[i : i + self.batch])
                for i in range(0, len(texts), self.batch)
            ]
        return np.concatenate(parts) if parts else np.empty((0, 0), np.float32)

    def _request(self, client: httpx.Client, texts: list[str]) -> np.ndarray:
        body = {"model": self.requested, "input": texts, "encoding_format": "base64"}
        try:
            response = client.post("/embeddings", json=body)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                f"The embeddings service at {self.url} is unreachable: {exc}"
            ) from exc
        if response.status_code == 429:  # the caller may wait and retry
            raise RateLimited(f"The embeddings service at {self.url} is busy (429).")
        if response.status_code != 200:
            raise ServiceUnavailable(
                f"The embeddings service at {self.url} answered "
                f"{response.status_code}: {response.text[:300]}"
            )
        payload = response.json()
        self.model = payload["model"]  # record the model the service says it used
        rows = sorted(payload["data"], key=lambda item: item["index"])
        return np.stack([np.frombuffer(base64.b64decode(r["embedding"]), "<f4") for r in rows])
