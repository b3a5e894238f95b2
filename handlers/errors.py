"""What a route refuses with, and the one place each refusal becomes an HTTP answer.

Routes and their dependencies raise; `install` registers one exception handler per error class
on the app. A router whose protocol answers errors in its own shape (OFREP) names that shape
with `answers_in`; every other route answers `{"error": <sentence>}`, plus `fields` for a 422.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import InterfaceError, OperationalError

from handlers.auth import Unauthorized
from handlers.storage_errors import STORAGE_UNAVAILABLE, log_storage_unavailable
from storage.db import StorageUnavailable

__all__ = [
    "BadBody",
    "BadRequest",
    "Conflict",
    "EdgeError",
    "ErrorShape",
    "NotFound",
    "TooLarge",
    "Unavailable",
    "answers_in",
    "install",
]

log = logging.getLogger(__name__)

# (request, status, sentence, error code, extra fields) -> the answer
ErrorShape = Callable[[Request, int, str, str, dict[str, Any]], Response]


class EdgeError(Exception):
    """A refusal a route answers with its status; the message is a sentence for the sender."""

    status = 400
    code = "GENERAL"  # what protocols with error codes (OFREP) call it

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(EdgeError):
    """The body is not a request this route reads (OFREP's PARSE_ERROR, INVALID_CONTEXT)."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class NotFound(EdgeError):
    """Nothing the caller may see has that name."""

    status = 404

    def __init__(self, message: str, *, code: str = "GENERAL") -> None:
        super().__init__(message)
        self.code = code


class Conflict(EdgeError):
    """The request clashes with something stored; nothing was stored."""

    status = 409


class TooLarge(EdgeError):
    """The body is over the size limit."""

    status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"body larger than {limit} bytes")
        self.limit = limit


class BadBody(EdgeError):
    """The body is invalid; `fields` names each bad field by its dotted path."""

    status = 422

    def __init__(self, message: str, fields: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.fields = fields

    @classmethod
    def field(cls, name: str, message: str) -> BadBody:
        """Return the refusal of one bad field."""
        return cls(f"invalid field {name}: {message}", [{"field": name, "message": message}])


class Unavailable(EdgeError):
    """Something the route depends on cannot answer just now; the sender should retry."""

    status = 503

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(
            message, headers={"Retry-After": str(retry_after)} if retry_after is not None else None
        )


def plain(
    _request: Request, status: int, message: str, _code: str, extra: dict[str, Any]
) -> Response:
    """The answer of the webhook routes: `{"error": <sentence>, ...}`."""
    return JSONResponse({"error": message, **extra}, status_code=status)


def answers_in(shape: ErrorShape) -> Callable[[Request], None]:
    """Return a router dependency that makes the refusals of its routes answer in `shape`."""

    def dependency(request: Request) -> None:
        request.state.error_shape = shape

    return dependency


def _shape(request: Request) -> ErrorShape:
    shape: ErrorShape = getattr(request.state, "error_shape", plain)
    return shape


def _answer(
    request: Request, status: int, message: str, code: str = "GENERAL", **extra: Any
) -> Response:
    return _shape(request)(request, status, message, code, extra)


def _with_headers(response: Response, headers: dict[str, str]) -> Response:
    for name, value in headers.items():
        response.headers[name] = value
    return response


def endpoint_of(request: Request) -> str:
    """Name the route a request reached, its path parameters as `{id}` (for the log)."""
    route = request.scope.get("route")
    path = getattr(route, "path", None) or request.url.path
    return re.sub(r"\{[^}]+\}", "{id}", str(path))


async def _unauthorized(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Unauthorized)
    # never the body: it is unauthenticated and may be anything, of any size
    log.info("%s refused: %s", endpoint_of(request), exc)
    return _with_headers(_answer(request, 401, str(exc)), {"WWW-Authenticate": "Bearer"})


async def _edge_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EdgeError)
    extra: dict[str, Any] = {"fields": exc.fields} if isinstance(exc, BadBody) else {}
    return _with_headers(_answer(request, exc.status, exc.message, exc.code, **extra), exc.headers)


async def _storage(request: Request, exc: Exception) -> Response:
    # the database's host, port and reason go to the log only
    log_storage_unavailable(exc, endpoint=endpoint_of(request))
    return _answer(request, 503, STORAGE_UNAVAILABLE)


def install(app: FastAPI) -> None:
    """Register the one handler of each error class a route may raise."""
    app.add_exception_handler(Unauthorized, _unauthorized)
    # every refusal of a route (BadRequest, NotFound, Conflict, TooLarge, BadBody, Unavailable)
    app.add_exception_handler(EdgeError, _edge_error)
    # a write that waited too long for the lock, or a database that is down
    for storage_error in (StorageUnavailable, OperationalError, InterfaceError):
        app.add_exception_handler(storage_error, _storage)
