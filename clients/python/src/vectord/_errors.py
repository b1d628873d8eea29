"""Errors of the vectord client: every error answer of the server becomes one exception,
carrying the HTTP status, the server's error code and message (docs/API.md)."""

from __future__ import annotations

from typing import Optional


class VectordError(Exception):
    """An error answer of vectord (or no answer at all: `status` 0, code `unreachable`)."""

    def __init__(self, status: int, code: str, message: str, retry_after: Optional[float] = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class InvalidRequest(VectordError):
    """400: the request was refused and nothing changed (`code` says what was wrong)."""


class Unauthorized(VectordError):
    """401: the API key is missing or wrong."""


class NotFound(VectordError):
    """404: no such index or item."""


class Conflict(VectordError):
    """409: the index name is taken, being deleted, or its stored copy failed to load."""


class PayloadTooLarge(VectordError):
    """413: the body is over the server's limit: send smaller batches."""


class Busy(VectordError):
    """503 `busy`: too much waits to be indexed or written; retried by the client within
    its bound (`max_busy_wait`) before it is raised."""


class Unavailable(VectordError):
    """503 other than `busy` (still loading, storage unavailable), or no answer."""


_BY_STATUS = {
    400: InvalidRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
}


def error_from(status: int, body: object, retry_after: Optional[str]) -> VectordError:
    """The exception for an error answer (`body` as decoded JSON, or text)."""
    code, message = "http_error", str(body)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = str(body["error"].get("code", code))
        message = str(body["error"].get("message", message))
    wait: Optional[float] = None
    if retry_after is not None:
        try:
            wait = float(retry_after)
        except ValueError:
            wait = None
    if status == 503:
        kind = Busy if code == "busy" else Unavailable
        return kind(status, code, message, wait)
    return _BY_STATUS.get(status, VectordError)(status, code, message, wait)
