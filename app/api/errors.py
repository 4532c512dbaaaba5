"""Where domain errors become HTTP errors: every error answers in OpenAI's shape."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from app.errors import AppError

log = logging.getLogger("embedsearch.http")

# Messages for fields whose pydantic errors would be unreadable (unions, literals).
FIELD_MESSAGES = {
    "input": "'input' must be a string, an array of strings, an array of token ids, or an "
    "array of token-id arrays, all of one kind.",
    "encoding_format": "'encoding_format' must be 'float' or 'base64'.",
    "dimensions": "'dimensions' must be a positive integer no larger than the model's size.",
    "model": "'model' must be a string naming a served model (see GET /v1/models).",
}

HTTP_TYPES = {401: "invalid_request_error", 429: "rate_limit_error"}


def error_response(error: AppError) -> JSONResponse:
    """The JSON response for an AppError."""
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _shape(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    kind = "server_error" if status >= 500 else HTTP_TYPES.get(status, "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    """One readable message (and the offending parameter) for a validation failure."""
    first = exc.errors()[0]
    loc = [str(part) for part in first.get("loc", ())]
    # The first part says where the value came from (body, query, path...): not a parameter.
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]
    if first.get("type") == "json_invalid":
        return (
            "We could not parse the JSON body of your request. Send valid JSON with "
            "'Content-Type: application/json'.",
            None,
        )
    param = loc[0] if loc else None
    if first.get("type") == "missing":
        if param is None:
            return "The request needs a JSON body.", None
        if param == "model":
            return "You must provide a model parameter.", "model"
        return f"Missing required parameter: '{param}'.", param
    if param in FIELD_MESSAGES:
        return FIELD_MESSAGES[param], param
    if not loc:
        return "The request body must be a JSON object; see /docs for its fields.", None
    return f"Invalid value for '{'.'.join(loc)}': {first.get('msg', 'invalid')}.", param


def _is_body_error(exc: RequestValidationError) -> bool:
    """True when the body as a whole was not a JSON object (rather than one field being wrong)."""
    first = exc.errors()[0]
    return tuple(first.get("loc", ())) == ("body",) and first.get("type") != "missing"


def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's HTTP errors (no such route, wrong method) in the API's error shape."""
    message = exc.detail if isinstance(exc.detail, str) else "Request failed."
    if exc.status_code == 404:
        message = f"No route {request.method} {request.url.path}. See /docs for the API."
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    return JSONResponse(
        _shape(exc.status_code, message, code=code),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


PageFor404 = Callable[[Request], Response | None]


def install(app: FastAPI, page_for_404: PageFor404 | None = None) -> None:
    """Register the handlers that give every error the same shape.

    ``page_for_404`` lets the browser UI answer a missing page with HTML; it returns None for
    requests that should get the JSON error.
    """

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type", "")
        if _is_body_error(exc) and "json" not in content_type:
            message = f"Send the body as JSON with 'Content-Type: application/json', not {content_type or 'no content type'!r}."
            return JSONResponse(
                _shape(415, message, code="unsupported_media_type"), status_code=415
            )
        message, param = validation_message(exc)
        return JSONResponse(_shape(400, message, param), status_code=400)

    @app.exception_handler(HTTPException)
    async def starlette_error(request: Request, exc: HTTPException) -> Response:
        page = page_for_404(request) if page_for_404 and exc.status_code == 404 else None
        return page or http_error(request, exc)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("Unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            _shape(500, "The server had an error while processing your request."),
            status_code=500,
        )
