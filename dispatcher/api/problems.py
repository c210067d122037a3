"""Quay's problem-JSON error body, and the handlers that turn every error into one.

``{"detail", "error_message", "error_type", "title", "type", "status"}`` for every failure,
so clients never see an HTML page or a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from dispatcher.errors import (
    DispatcherError,
    http_status,
)

log = logging.getLogger(__name__)

_ERROR_TYPES = {
    400: "invalid_request",
    401: "invalid_token",
    403: "insufficient_scope",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    500: "internal_error",
    503: "service_unavailable",
}


class Problem(BaseModel):
    """The error body of every failed request."""

    detail: str
    error_message: str
    error_type: str
    title: str
    type: str
    status: int


def problem_response(
    request: Request, status: int, detail: str, error_type: str | None = None
) -> JSONResponse:
    kind = error_type or _ERROR_TYPES.get(status, "error")
    base = f"{request.url.scheme}://{request.url.netloc}"
    body = Problem(
        detail=detail,
        error_message=detail,
        error_type=kind,
        title=kind,
        type=f"{base}/api/v1/error/{kind}",
        status=status,
    )
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else None
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


async def _dispatcher_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DispatcherError)
    return problem_response(request, http_status(exc), exc.message)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "Request failed"
    if exc.status_code == 404:
        detail = "Not Found"
    return problem_response(request, exc.status_code, detail)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors: list[Any] = list(exc.errors())
    first = errors[0] if errors else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    message = first.get("msg", "Invalid request")
    return problem_response(request, 400, f"{where}: {message}" if where else message)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(request, 500, "Internal server error")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DispatcherError, _dispatcher_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Invalid request"},
    401: {"model": Problem, "description": "Missing, invalid, expired or revoked token"},
    403: {"model": Problem, "description": "Token lacks the scope or the repository grant"},
    404: {"model": Problem, "description": "Unknown repository or notification"},
}
