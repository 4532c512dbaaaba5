"""LeanRoutes: the hot routes served inside the middleware, past FastAPI's router."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from starlette.types import Receive, Scope, Send

from app.api.embeddings import LeanRoute, lean_routes
from app.api.middleware import LeanRoutes
from app.errors import AppError, BadRequest


class Inner:
    """The rest of the app: records what reaches it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        await Response("inner")(scope, receive, send)


async def echo(request: Request) -> Response:
    if request.query_params.get("fail") == "app":
        raise BadRequest("Nothing to echo.", param="input")
    if request.query_params.get("fail") == "bug":
        raise RuntimeError("a bug")
    return Response(await request.body() + b" via " + request.scope["route"].path.encode())


async def answer_app_error(request: Request, exc: AppError) -> Response:
    return Response(exc.message, status_code=exc.status)


def lean(inner: Inner) -> httpx.AsyncClient:
    app = LeanRoutes(
        inner, [LeanRoute("/echo", echo, methods=["POST"])], {AppError: answer_app_error}
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def test_serves_its_routes_and_passes_on_the_rest() -> None:
    inner = Inner()

    async def requests() -> None:
        async with lean(inner) as client:
            assert (await client.post("/echo", content=b"hi")).text == "hi via /echo"
            assert (await client.get("/echo")).text == "inner"  # another method: router's 405
            assert (await client.post("/echo/more")).text == "inner"

    asyncio.run(requests())
    assert inner.paths == ["/echo", "/echo/more"]


def test_errors_go_to_the_apps_handler_or_on_up() -> None:
    async def requests() -> None:
        async with lean(Inner()) as client:
            r = await client.post("/echo?fail=app")
            assert (r.status_code, r.text) == (400, "Nothing to echo.")
            with pytest.raises(RuntimeError, match="a bug"):  # the server-error middleware's
                await client.post("/echo?fail=bug")

    asyncio.run(requests())


def test_the_embeddings_routes_are_lean() -> None:
    paths = sorted(route.path for route in lean_routes())
    assert paths == ["/api/embeddings", "/v1/embeddings"]


def test_the_app_serves_embeddings_without_its_router(make_client, monkeypatch) -> None:
    client = make_client()
    routed: list[str] = []
    app: FastAPI = client.app
    original = type(app.router).__call__

    async def spy(router, scope, receive, send) -> None:
        routed.append(scope["path"])
        await original(router, scope, receive, send)

    monkeypatch.setattr(type(app.router), "__call__", spy)
    body = {"model": "all-MiniLM-L6-v2", "input": "hello"}
    assert client.post("/v1/embeddings", json=body).status_code == 200
    assert client.post("/v1/embeddings", json={"input": "hello"}).status_code == 400
    assert client.get("/v1/models").status_code == 200
    assert routed == ["/v1/models"]
