"""Pages open to everyone: signing in and out, and the API documentation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.api.auth import COOKIE, check_key
from app.errors import Unauthorized
from app.web.session import keys_required, render, safe_next, valid_form

router = APIRouter(include_in_schema=False)

COOKIE_DAYS = 7


@router.get("/signin", response_class=HTMLResponse)
def sign_in_page(request: Request, next: str = "/") -> Response:
    """Ask for an API key (only when the server has keys)."""
    if not keys_required(request):
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "signin.html", next=safe_next(next))


@router.post("/signin", dependencies=[Depends(valid_form)])
def sign_in(
    request: Request,
    key: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the key; if valid, keep it in an HttpOnly, SameSite=Strict cookie."""
    try:
        check_key(key.strip(), request.app.state.settings.api_keys)
    except Unauthorized:
        message = "Enter your API key." if not key.strip() else "That key is not valid."
        return render(request, "signin.html", status=401, next=safe_next(next), error=message)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE,
        key.strip(),
        max_age=COOKIE_DAYS * 24 * 3600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/signout", dependencies=[Depends(valid_form)])
def sign_out() -> Response:
    """Forget the key and go back to the sign-in page."""
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(COOKIE, httponly=True, samesite="strict")
    return response


@router.get("/docs", response_class=HTMLResponse)
def api_docs(request: Request) -> HTMLResponse:
    """Swagger UI for the OpenAPI schema, from vendored assets (works offline)."""
    return render(request, "docs.html", nav="docs")
