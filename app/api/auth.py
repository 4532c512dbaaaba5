"""API keys, sent as a Bearer header or in the sign-in cookie: with none configured the API is open."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from app.errors import Unauthorized

COOKIE = "embedsearch_key"  # set by the sign-in page: HttpOnly, SameSite=Strict


def check_key(presented: str | None, keys: list[str]) -> None:
    """Raise Unauthorized unless ``presented`` is one of ``keys`` (constant-time comparison)."""
    if not keys:
        return
    if not presented:
        raise Unauthorized(
            "You didn't provide an API key. Send it in an Authorization header using Bearer "
            "auth (Authorization: Bearer YOUR_KEY).",
            code=None,
        )
    # Compare against every key so the time taken does not say which one nearly matched.
    matches = [hmac.compare_digest(presented.encode(), key.encode()) for key in keys]
    if not any(matches):
        raise Unauthorized(
            "Incorrect API key provided. Check the key in your Authorization header."
        )


def bearer(request: Request) -> str | None:
    """The key from ``Authorization: Bearer KEY``, if any."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return key.strip() or None if scheme.lower() == "bearer" else None


def presented_key(request: Request) -> str | None:
    """The key from the Bearer header, else from the sign-in cookie."""
    return bearer(request) or request.cookies.get(COOKIE) or None


async def require_key(request: Request) -> None:
    """Dependency: the request carries a valid API key (when keys are configured).

    ``async`` because it never waits: FastAPI would run a plain ``def`` in a worker thread.
    """
    check_key(presented_key(request), request.app.state.settings.api_keys)


KeyDep = Annotated[None, Depends(require_key)]
