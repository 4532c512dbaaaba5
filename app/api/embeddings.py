"""The OpenAI-compatible embeddings and models routes.

The embeddings route is the server's hot path: at one short text per request, everything outside
the model is a third of the work. So it reads its body itself: orjson parses it, a well-formed
request of texts is checked by hand, and anything else (token ids, wrong types, bad JSON) goes
through the pydantic model, whose errors answer exactly as FastAPI's own body validation would.
And it is served by a ``LeanRoute``: documented like any other route, called without FastAPI's
per-request dependency solving (a fifth of the event loop's time per request, measured), and
reached without its router (``app.api.middleware.LeanRoutes``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Coroutine
from typing import Any, Literal

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from app.api.auth import check_key, presented_key, require_key
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


def encode_vectors(vectors: np.ndarray, encoding_format: str) -> list[Any]:
    """Each row as base64 of its little-endian float32 bytes, or as floats (orjson writes a
    float64 array as the same numbers ``tolist()`` gives, twenty times faster)."""
    if encoding_format == "base64":
        return [base64.b64encode(row).decode("ascii") for row in vectors.astype("<f4")]
    return list(vectors.astype(np.float64))


async def embedding_request(request: Request) -> EmbeddingRequest:
    """The request body; 400 in the API's error shape if it is not a valid request."""
    raw = await request.body()
    if not raw:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required"}]
        )
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:  # orjson is stricter (NaN, huge integers): ask the stdlib
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body", 0), "msg": "JSON decode error"}]
            ) from exc
    return _checked_by_hand(data) or _validated(data)


def _checked_by_hand(data: Any) -> EmbeddingRequest | None:
    """The request, if it is text input with well-typed fields (what pydantic would accept)."""
    if type(data) is not dict:
        return None
    text = data.get("input")
    fields = {
        "model": data.get("model"),
        "input": text,
        "encoding_format": data.get("encoding_format", "float"),
        "dimensions": data.get("dimensions"),
        "user": data.get("user"),
    }
    if (
        type(fields["model"]) is not str
        or fields["encoding_format"] not in ("float", "base64")
        or type(fields["dimensions"]) not in (int, type(None))
        or type(fields["user"]) not in (str, type(None))
        or not (type(text) is str or (type(text) is list and text and _all_strings(text)))
    ):
        return None
    return EmbeddingRequest.model_construct(**fields)


def _all_strings(items: list) -> bool:
    return all(type(item) is str for item in items)


def _validated(data: Any) -> EmbeddingRequest:
    """The request checked by its model; its errors located in the body, as FastAPI does."""
    try:
        return EmbeddingRequest.model_validate(data)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None


class LeanRoute(APIRoute):
    """A route documented from its endpoint as usual, but called with the request alone: no
    dependencies are solved, so the endpoint checks the API key itself. ``LeanRoutes``
    middleware serves it before FastAPI's router is reached."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The endpoint itself: it takes the request and returns a response."""
        return self.endpoint


async def create_embedding(request: Request) -> Response:
    """Create embeddings for the input (OpenAI-compatible)."""
    state = request.app.state
    check_key(presented_key(request), state.settings.api_keys)
    engine: Engine = state.engine
    body = await embedding_request(request)
    result = await engine.aembed(body.input, body.model, body.dimensions)
    vectors = encode_vectors(result.vectors, body.encoding_format)
    payload = {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": vector, "index": i}
            for i, vector in enumerate(vectors)
        ],
        "model": result.model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }
    body_bytes = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body_bytes, media_type="application/json")


# The body is read by hand (above), so its schema is declared for the docs here.
REQUEST_BODY = {
    "required": True,
    "content": {"application/json": {"schema": EmbeddingRequest.model_json_schema()}},
}

for path, op in (
    ("/v1/embeddings", "create_embedding"),
    ("/api/embeddings", "create_embedding_api"),
):
    router.add_api_route(
        path,
        create_embedding,
        methods=["POST"],
        operation_id=op,
        openapi_extra={"requestBody": REQUEST_BODY},
        route_class_override=LeanRoute,
    )


def lean_routes() -> list[APIRoute]:
    """The routes of this module that ``LeanRoutes`` middleware serves."""
    return [route for route in router.routes if isinstance(route, LeanRoute)]


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
