"""ASGI middleware: request-size limits and request metrics, without the cost of BaseHTTPMiddleware."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import AppError, BadRequest, Forbidden, PayloadTooLarge, UnsupportedMediaType
from app.jsonvalues import has_lone_surrogate
from app.metrics import Metrics


class BodyLimit:
    """Refuse request bodies over a size limit with 413, before or while they stream in."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/")
        limit = self.max_upload_bytes if multipart else self.max_bytes
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await _too_large(send, limit)
            return
        seen = 0
        refused = False

        async def limited_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit and not refused:
                refused = True
                await _too_large(send, limit)
                raise _Refused
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:  # once 413 has gone out, whatever the app says is moot
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused:
                raise


class _Refused(Exception):
    """Raised into the app when its request body went over the limit."""


async def _too_large(send: Send, limit: int) -> None:
    error = PayloadTooLarge(
        f"The request body is larger than the limit of {limit} bytes. Send less per request "
        "(or raise the limit in the server's settings)."
    )
    await send_error(send, error, close=True)


async def send_error(send: Send, error: AppError, close: bool = False) -> None:
    """Answer with an AppError in the API's shape, straight from middleware."""
    headers = [(b"content-type", b"application/json")]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(error.body()).encode()})


API_PREFIXES = ("/api/", "/v1/")
# A JSON escape of half a surrogate pair; only bodies holding one are parsed here.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class JsonBody:
    """API bodies must be JSON (or multipart uploads), and JSON must be valid Unicode.

    A browser sends ``text/plain`` and form bodies cross-site without asking first, so the API
    refusing them leaves other sites no way to write; and a lone surrogate (``"\\ud800"``) is
    refused here once rather than failing deep inside whichever layer first encodes it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in ("POST", "PUT", "PATCH")
            or not scope["path"].startswith(API_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        has_body = headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers
        json_body = kind == b"application/json" or kind.endswith(b"+json")
        if has_body and not (json_body or kind == b"multipart/form-data"):
            shown = kind.decode("latin-1") or "no content type"
            await send_error(
                send,
                UnsupportedMediaType(
                    f"Send the body as JSON with 'Content-Type: application/json' (or files as "
                    f"multipart/form-data), not {shown!r}."
                ),
            )
            return
        if not json_body:
            await self.app(scope, receive, send)
            return
        messages = [await receive()]
        while messages[-1].get("more_body") and messages[-1]["type"] == "http.request":
            messages.append(await receive())
        body = b"".join(m.get("body", b"") for m in messages)
        if _SURROGATE_ESCAPE.search(body) and _lone_surrogate(body):
            await send_error(
                send,
                BadRequest(
                    "The JSON body holds a lone surrogate escape (like \\ud800), which is not "
                    "text: send valid Unicode."
                ),
            )
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def _lone_surrogate(body: bytes) -> bool:
    """True if the body parses as JSON holding a lone surrogate; parse errors are the app's."""
    try:
        return has_lone_surrogate(json.loads(body))
    except (ValueError, RecursionError):
        return False


UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def cross_site(headers: dict[bytes, bytes]) -> bool:
    """True when the browser says another site made it send this request."""
    site = headers.get(b"sec-fetch-site")
    if site is not None:  # every current browser sends it
        return site not in (b"same-origin", b"none")
    origin = headers.get(b"origin")
    if origin is None:  # not a browser (or a very old one); the cookie is SameSite=Strict too
        return False
    return origin == b"null" or urlsplit(origin).netloc != headers.get(b"host", b"")


class SameOrigin:
    """Refuse state-changing requests another site made a browser send (CSRF).

    A request with an ``Authorization`` header was not sent by a browser on another site's
    behalf (browsers never add one cross-site); any other may carry the sign-in cookie, or
    reach a server without keys, so it must come from this site's own pages.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS:
            headers = dict(scope["headers"])
            if b"authorization" not in headers and cross_site(headers):
                error = Forbidden(
                    "Requests that change data must come from this site's own pages (or carry "
                    "an API key in an Authorization header); another site sent this one."
                )
                await send_error(send, error)
                return
        await self.app(scope, receive, send)


class RequestMetrics:
    """Count requests by route template and status, and time them."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)


CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeaders:
    """Add a strict Content-Security-Policy, nosniff and a Referrer-Policy to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class LeanRoutes:
    """Serve the hot routes (the embeddings endpoints' ``LeanRoute``) from inside the other
    middleware, past FastAPI's exception middleware, exit stacks and router.

    At one short text per request the framework's layers were a fifth of the event loop's CPU
    per request; routing alone (FastAPI's included routers, matched anew for every request) was
    a third of that. In-process it cut the stack's CPU per request from 65-73 to 37-47 us.
    An error the endpoint raises is answered by the app's handler for it, as the exception
    middleware would; one without a handler goes on to the server-error middleware.
    """

    def __init__(
        self, app: ASGIApp, routes: Iterable[APIRoute], handlers: Mapping[Any, Any]
    ) -> None:
        self.app = app
        self.routes = {(method, r.path): r for r in routes for method in r.methods or ()}
        self.handlers = handlers  # the app's exception handlers, by exception class

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = None
        if scope["type"] == "http":
            route = self.routes.get((scope["method"], scope["path"]))
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # what the router would set: the metrics label the route by it
        request = Request(scope, receive, send)
        try:
            response = await route.endpoint(request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Any:
        """The handler for the nearest of ``exc``'s classes that has one (not the catch-all
        ``Exception`` one: that is the server-error middleware's)."""
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in self.handlers:
                return self.handlers[cls]
        return None
