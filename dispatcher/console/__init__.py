"""The operator console: server-rendered pages at ``/console`` over the same use cases and the
same authorisation as the API.

:func:`install_console` mounts it on the API app (``create_app`` calls it), so ``dispatcher
serve`` serves it in the embedded and the distributed shape alike. It is its own FastAPI app
so that its errors are HTML pages, not problem JSON: the status codes are the API's (401,
403, 404, 400, 413, 503), and bad input never answers 500. A defect still reaches the API
app's handler, which logs it and answers 500. Its stylesheet and script are
served from the package; no page loads anything from another origin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from dispatcher.console import actions, pages
from dispatcher.console.render import (
    SECURITY_HEADERS,
    Pages,
    base_path,
    console_templates_dir,
    make_environment,
)
from dispatcher.console.session import COOKIE, CsrfError, SessionCodec, Visitor
from dispatcher.db import is_connection_error
from dispatcher.errors import AuthError, DatabaseUnavailableError, DispatcherError, http_status
from dispatcher.ops.asgi import FixedHeaders
from dispatcher.runtime import Runtime

PREFIX = "/console"
STATIC_DIR = Path(__file__).resolve().parent / "static"
_CSRF_MESSAGE = (
    "This form has expired or did not come from this console. Go back, reload the page and "
    "try again."
)


def install_console(app: FastAPI, runtime: Runtime) -> None:
    """Mount the console at ``/console`` (and send ``/console`` itself to ``/console/``)."""

    @app.get(PREFIX, include_in_schema=False)
    def console_root() -> Response:
        return RedirectResponse(PREFIX + "/", status_code=307)

    app.mount(PREFIX, create_console(runtime))


def create_console(runtime: Runtime) -> FastAPI:
    console = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, redirect_slashes=False)
    console.state.runtime = runtime
    codec = SessionCodec(runtime.sessions, runtime.settings)
    environment = make_environment(console_templates_dir())
    console.state.pages = Pages(environment, codec, runtime.settings.console_poll_interval)
    console.include_router(pages.router)
    console.include_router(actions.router)
    console.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    console.add_exception_handler(DispatcherError, _dispatcher_error)
    console.add_exception_handler(CsrfError, _csrf_error)
    console.add_exception_handler(RequestValidationError, _validation_error)
    console.add_exception_handler(StarletteHTTPException, _http_error)
    console.add_exception_handler(DBAPIError, _database_error)
    console.add_exception_handler(PoolTimeoutError, _database_error)
    console.add_middleware(FixedHeaders, headers=SECURITY_HEADERS)
    return console


def error_page(request: Request, status: int, message: str) -> Response:
    """The error page; for a 401 it is the sign-in form, returning here afterwards."""
    renderer: Pages = request.app.state.pages
    if status == 401:
        here = request.url.path.removeprefix(base_path(request))
        return renderer.page(
            request,
            "sign_in.html",
            status=401,
            error=_sign_in_reason(request, message),
            next_path=here if request.method == "GET" else "",
        )
    return renderer.page(request, "error.html", status=status, status_code=status, message=message)


def _sign_in_reason(request: Request, message: str) -> str:
    had_token = COOKIE in request.cookies
    if message == AuthError().message and had_token:
        return "Sign in again: your token is unknown, expired or revoked, or you signed out."
    return "Sign in with a token to continue."


async def _dispatcher_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DispatcherError)
    return error_page(request, http_status(exc), exc.message)


async def _csrf_error(request: Request, exc: Exception) -> Response:
    return error_page(request, 403, _CSRF_MESSAGE)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first: dict[str, Any] = next(iter(exc.errors()), {})
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("query", "path"))
    message = str(first.get("msg", "Invalid request"))
    return error_page(request, 400, f"{where}: {message}" if where else message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = "Page not found" if exc.status_code == 404 else str(exc.detail)
    return error_page(request, exc.status_code, message)


async def _database_error(request: Request, exc: Exception) -> Response:
    if is_connection_error(exc):
        # The cookie's key may live in the unreachable database: answer without the cookie.
        renderer: Pages = request.app.state.pages
        message = DatabaseUnavailableError().message
        return renderer.page(
            request,
            "error.html",
            status=503,
            visitor=Visitor(csrf=""),
            status_code=503,
            message=message,
        )
    # Anything else from the database is a defect: the API app's handler logs it (500).
    raise exc
