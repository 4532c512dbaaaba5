"""The OpenAI-compatible embeddings and models routes."""

from __future__ import annotations

import base64
import json
from typing import Literal

import numpy as np
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from app.api.auth import require_key
from app.api.deps import EngineDep
from app.embeddings.engine import Engine

router = APIRouter(dependencies=[Depends(require_key)], tags=["embeddings"])


class EmbeddingRequest(BaseModel):
    """An OpenAI embeddings request; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: StrictStr = Field(description="A served model id or alias (see GET /v1/models).")
    input: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]] = Field(
        description="A string, an array of strings, an array of token ids, or an array of "
        "token-id arrays."
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: StrictInt | None = Field(None, description="Cut vectors to this many dimensions.")
    user: StrictStr | None = Field(None, description="Accepted and ignored.")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    root: str = Field(description="The served model this name runs: itself, or an alias's target.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def encode_vector(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    """A vector as a JSON float list, or base64 of its little-endian float32 bytes."""
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.tolist()


async def create_embedding(body: EmbeddingRequest, engine: EngineDep) -> Response:
    """Create embeddings for the input (OpenAI-compatible)."""
    result = await engine.aembed(body.input, body.model, body.dimensions)
    payload = {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": encode_vector(v, body.encoding_format), "index": i}
            for i, v in enumerate(result.vectors)
        ],
        "model": result.model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }
    # json.dumps directly: FastAPI's encoder is slow on thousands of floats.
    return Response(json.dumps(payload), media_type="application/json")


for path, op in (
    ("/v1/embeddings", "create_embedding"),
    ("/api/embeddings", "create_embedding_api"),
):
    router.add_api_route(path, create_embedding, methods=["POST"], operation_id=op)


def _card(engine: Engine, name: str) -> ModelCard:
    spec = engine.registry.resolve(name)
    return ModelCard(id=name, created=spec.created, owned_by=spec.owned_by, root=spec.id)


@router.get("/v1/models", response_model=ModelList)
def list_models(engine: EngineDep) -> ModelList:
    """List the served models, aliases included."""
    return ModelList(data=[_card(engine, name) for name in engine.registry.names()])


@router.get("/v1/models/{model_id:path}", response_model=ModelCard)
def get_model(model_id: str, engine: EngineDep) -> ModelCard:
    """Describe one model; 404 if it is not served."""
    return _card(engine, model_id)
