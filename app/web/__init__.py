"""The browser UI: server-rendered pages over the same store, search and ingestion as the API."""

from __future__ import annotations

import jinja2
from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from app.api.errors import http_error
from app.web import pages, public, views
from app.web.session import SignInRequired, redirect_to_sign_in


def templates(directory: str) -> Jinja2Templates:
    """Templates from ``directory``, autoescaped, with the UI's filters and helpers."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(directory), autoescape=True)
    env.filters.update(filesize=views.filesize, when=views.when)
    env.globals.update(query=views.query)
    return Jinja2Templates(env=env)


def install(app: FastAPI) -> None:
    """Add the pages, the sign-in flow, /docs and /static to ``app``."""
    settings = app.state.settings
    app.state.templates = templates(str(settings.templates_dir))
    app.mount("/static", StaticFiles(directory=settings.static_dir), name="static")
    app.include_router(public.router)
    app.include_router(pages.router)
    app.add_exception_handler(SignInRequired, redirect_to_sign_in)
    app.add_exception_handler(pages.PageNotFound, pages.page_not_found)
    app.add_exception_handler(HTTPException, page_or_api_error)


API_PREFIXES = ("/api/", "/v1/", "/metrics", "/health", "/openapi.json", "/static/")


async def page_or_api_error(request: Request, exc: HTTPException) -> Response:
    """A browser that asks for a page that does not exist gets the HTML 404 page, not JSON."""
    wants_page = "text/html" in request.headers.get("accept", "")
    if exc.status_code == 404 and wants_page and not request.url.path.startswith(API_PREFIXES):
        return pages.not_found(request, "There is no page at this address.")
    return await http_error(request, exc)
