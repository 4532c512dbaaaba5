"""With API keys set, every route but sign-in, health and the API description refuses strangers."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute
from starlette.routing import Mount

OPEN = {"/health", "/health/live", "/signin", "/docs", "/openapi.json"}
KEY = "walk-the-routes"


def concrete(path: str) -> str:
    """A request path for a route template: every {parameter} becomes 1."""
    return re.sub(r"\{[^}]+\}", "1", path)


def walk(routes: list) -> list:
    """Every route, with included routers opened up (the app includes them without prefixes)."""
    found = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        found.extend(walk(inner.routes) if inner is not None else [route])
    return found


def test_every_route_needs_a_key(make_client) -> None:
    client = make_client(api_keys=[KEY])
    checked = 0
    for route in walk(client.app.routes):
        if isinstance(route, Mount) or route.path in OPEN:
            continue
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method == "HEAD":
                continue
            response = client.request(method, concrete(route.path), follow_redirects=False)
            if isinstance(route, APIRoute) and route.path.startswith(("/api", "/v1", "/metrics")):
                assert response.status_code == 401, f"{method} {route.path}"
                assert KEY not in response.text
            else:  # a page: off to sign in (a form post without its token: refused)
                assert response.status_code in (303, 401, 403), f"{method} {route.path}"
                if response.status_code == 303:
                    assert response.headers["location"].startswith("/signin")
            checked += 1
    assert checked > 20


def test_open_routes_stay_open(make_client) -> None:
    client = make_client(api_keys=[KEY])
    for path in ("/health", "/health/live", "/signin", "/docs", "/openapi.json"):
        assert client.get(path).status_code == 200, path


def test_security_headers_everywhere(make_client) -> None:
    client = make_client(api_keys=[KEY])
    for path in ("/health", "/signin", "/v1/models", "/nope"):
        headers = client.get(path).headers
        assert "default-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"]
        assert "access-control-allow-origin" not in headers  # CORS is off


def test_wrong_key_is_not_echoed(make_client) -> None:
    client = make_client(api_keys=[KEY])
    r = client.get("/v1/models", headers={"Authorization": "Bearer hunter2-secret"})
    assert r.status_code == 401 and "hunter2" not in r.text
    r = client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200
