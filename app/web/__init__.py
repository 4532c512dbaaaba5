"""The browser UI: server-rendered pages over the same store, search and ingestion as the API."""

from __future__ import annotations

import secrets

import jinja2
from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

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
    app.state.form_secret = secrets.token_bytes(32)  # signs page forms' tokens; new each start
    app.state.templates = templates(str(settings.templates_dir))
    app.mount("/static", StaticFiles(directory=settings.static_dir), name="static")
    app.include_router(public.router)
    app.include_router(pages.router)
    app.exception_handler(SignInRequired)(redirect_to_sign_in)
    app.exception_handler(pages.PageNotFound)(pages.page_not_found)


API_PREFIXES = ("/api/", "/v1/", "/metrics", "/health", "/openapi.json", "/static/")


def not_found_page(request: Request) -> Response | None:
    """The HTML 404 page for a browser asking for a page that does not exist; None otherwise."""
    wants_page = "text/html" in request.headers.get("accept", "")
    if wants_page and not request.url.path.startswith(API_PREFIXES):
        return pages.not_found(request, "There is no page at this address.")
    return None
