"""Who may see the pages: with API keys configured, only a browser signed in with one."""

from __future__ import annotations

import hmac
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.api.auth import COOKIE, check_key
from app.errors import Forbidden, Unauthorized


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


def form_token(request: Request) -> str:
    """The token this browser's page forms carry: other sites can neither read nor forge it."""
    session = (request.cookies.get(COOKIE) or "").encode()
    return hmac.new(request.app.state.form_secret, session, "sha256").hexdigest()


async def valid_form(request: Request) -> None:
    """Dependency for page forms: the form carries the token its page was rendered with.

    Cross-site requests are refused before this (``SameOrigin``); the token also stops a form
    posted from a page that sends neither ``Origin`` nor ``Sec-Fetch-Site``.
    """
    sent = (await request.form()).get("csrf_token")
    if not isinstance(sent, str) or not hmac.compare_digest(sent, form_token(request)):
        raise Forbidden(
            "This form is out of date or came from another site: reload the page and submit "
            "it again."
        )


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
    shared = {
        "keys_required": keys_required(request),
        "signed_in": signed_in(request),
        "csrf_token": form_token(request),
    }
    return request.app.state.templates.TemplateResponse(
        request, name, {**shared, **context}, status_code=status
    )
