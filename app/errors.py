"""One error hierarchy for the whole app.

Every layer raises these; the HTTP layer turns them into OpenAI's error shape
``{"error": {"message", "type", "param", "code"}}`` in one place (``app.api.errors``).
"""

from __future__ import annotations

from types import EllipsisType


class AppError(Exception):
    """An error a client can act on: carries its HTTP status and OpenAI error fields."""

    status: int = 400
    type: str = "invalid_request_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None | EllipsisType = ...,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not ...:  # None is a real value: OpenAI sends "code": null for some errors
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, dict[str, str | None]]:
        """The OpenAI-shaped JSON body for this error."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class BadRequest(AppError):
    status = 400


class Unauthorized(AppError):
    status = 401
    code = "invalid_api_key"


class Forbidden(AppError):
    status = 403
    code = "forbidden"


class NotFound(AppError):
    status = 404
    code = "not_found"


class Conflict(AppError):
    status = 409
    code = "conflict"


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(AppError):
    status = 415
    code = "unsupported_media_type"


class Unprocessable(AppError):
    status = 422
    code = "unprocessable_content"


class RateLimited(AppError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class ServiceUnavailable(AppError):
    status = 503
    type = "server_error"
    code = "service_unavailable"
