"""Helpers for API tests: the test API key and the check for the API's error shape."""

from __future__ import annotations

from httpx import Response

API_KEY = "test-key-123"


def assert_error(response: Response, status: int, param: str | None = None) -> dict:
    """The response is an error in the API's (OpenAI's) shape with this status (and param)."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    return error
