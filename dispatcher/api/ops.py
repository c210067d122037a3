"""Operating the API: ``/metrics``, ``/healthz``, ``/readyz``, request metrics, request ids and
the 503 the API answers while its database is down.

:func:`install_operations` wires all of it into an app; ``create_app`` calls it.
"""

from __future__ import annotations

import re
import time
import uuid

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatcher.api.deps import RuntimeDep
from dispatcher.api.problems import Problem, problem_response
from dispatcher.db import is_connection_error
from dispatcher.errors import DatabaseUnavailableError
from dispatcher.ops import health, metrics
from dispatcher.ops.asgi import with_headers
from dispatcher.ops.logs import REQUEST_ID

router = APIRouter(tags=["operations"])

UNMATCHED_ROUTE = "<unmatched>"


@router.get("/healthz", summary="The process is up", response_model=dict[str, str])
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database and the broker can be reached, the templates load",
    responses={503: {"model": Problem, "description": "A dependency cannot be reached"}},
)
def readyz(request: Request, runtime: RuntimeDep) -> Response:
    reasons = health.readiness_problems(runtime.engine, runtime.settings)
    if reasons:
        return problem_response(request, 503, "; ".join(reasons), "service_unavailable")
    return JSONResponse({"status": "ok"})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def prometheus_metrics(runtime: RuntimeDep) -> Response:
    return Response(metrics.exposition(runtime.sessions), media_type=CONTENT_TYPE_LATEST)


class RequestMetricsMiddleware:
    """Counts requests and observes latency by route template (not raw path), method and
    status; a request that raises counts as 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = _route_template(scope)
            method = str(scope.get("method", ""))
            metrics.HTTP_REQUESTS.labels(route, method, str(status)).inc()
            metrics.HTTP_LATENCY.labels(route, method).observe(time.perf_counter() - started)


class RequestIdMiddleware:
    """Gives every request an id: the caller's ``X-Request-ID`` when it is a plain token (at
    most 128 letters, digits and ``._:-``), a new one otherwise. The id is echoed in the
    response's ``X-Request-ID`` and carried by every log line of the request (uvicorn's access
    line included: it is written from the request's task)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = REQUEST_ID.set(request_id)

        await self.app(scope, receive, with_headers(send, {"X-Request-ID": request_id}))
        # Reset only on success: a failure is logged above this middleware (uvicorn's
        # "Exception in ASGI application"), and that line must carry the id too. The server
        # runs each request in a task of its own, so the id does not outlive the request.
        REQUEST_ID.reset(token)


_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        given = bytes(value).strip()
        if name == b"x-request-id" and _REQUEST_ID.fullmatch(given):
            return given.decode("ascii")
    return uuid.uuid4().hex


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None) if isinstance(route, BaseRoute) else None
    return path if isinstance(path, str) else UNMATCHED_ROUTE


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if is_connection_error(exc):
        return problem_response(
            request, 503, DatabaseUnavailableError().message, "service_unavailable"
        )
    # Anything else from the database is a defect: answer like any unexpected error.
    raise exc


def install_operations(app: FastAPI) -> None:
    """Add the operations routes, the request-metrics middleware and the 503 mapping."""
    app.include_router(router)
    app.add_middleware(RequestMetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeoutError, _database_error)
