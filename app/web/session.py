"""Who may see the pages: with API keys configured, only a browser signed in with one."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.api.auth import COOKIE, check_key
from app.errors import Unauthorized


class SignInRequired(Exception):
    """Raised by a page that needs a signed-in browser; answered with a redirect."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


def keys_required(request: Request) -> bool:
    """True when the server has API keys, so pages need signing in."""
    return bool(request.app.state.settings.api_keys)


def signed_in(request: Request) -> bool:
    """True when the sign-in cookie holds a valid key (or no keys are configured)."""
    try:
        check_key(request.cookies.get(COOKIE), request.app.state.settings.api_keys)
    except Unauthorized:
        return False
    return True


async def require_sign_in(request: Request) -> None:
    """Dependency for pages: send a browser that is not signed in to the sign-in page."""
    if not signed_in(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)


async def same_site(request: Request) -> None:
    """Dependency for page forms: refuse a POST another site made the browser send."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise Unauthorized("Cross-site form submissions are not accepted.", code=None)


async def redirect_to_sign_in(request: Request, exc: SignInRequired) -> Response:
    """The answer to SignInRequired: the sign-in page, remembering where to go next."""
    return RedirectResponse(f"/signin?next={quote(exc.target, safe='')}", status_code=303)


def safe_next(target: str) -> str:
    """``target`` if it is a path on this site, else the search page (no open redirects)."""
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def render(request: Request, name: str, status: int = 200, **context: object) -> HTMLResponse:
    """Render a page template with what every page needs (the request, sign-in state)."""
    shared = {"keys_required": keys_required(request), "signed_in": signed_in(request)}
    return request.app.state.templates.TemplateResponse(
        request, name, {**shared, **context}, status_code=status
    )
