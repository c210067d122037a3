"""The HTTP API: :func:`create_app` builds it around a :class:`~dispatcher.runtime.Runtime`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline

from dispatcher.api import authorized_emails, deliveries, events, notifications, quay
from dispatcher.api.limits import BodyLimit
from dispatcher.api.ops import install_operations
from dispatcher.api.problems import install_problem_handlers
from dispatcher.ops.asgi import FixedHeaders
from dispatcher.runtime import Runtime
from dispatcher.version import __version__

# The reference pages: Swagger UI and ReDoc.
DOCS_PAGES = ("/docs", "/redoc")


def create_app(runtime: Runtime) -> FastAPI:
    # /docs and /redoc load Swagger UI and ReDoc from the fastapi-offline package's copies,
    # served by the app itself, so the reference works with no internet.
    app = FastAPIOffline(
        docs_url=DOCS_PAGES[0],
        redoc_url=DOCS_PAGES[1],
        title="dispatcher",
        version=__version__,
        description=(
            "Notification delivery for container registries. The repository-notification "
            "endpoints are compatible with Red Hat Quay's API. Authenticate with "
            "`Authorization: Bearer <token>` (tokens come from `dispatcher tokens create`)."
        ),
        redirect_slashes=False,
    )
    app.state.runtime = runtime
    install_problem_handlers(app)
    app.include_router(notifications.router)
    app.include_router(deliveries.router)
    app.include_router(events.router)
    app.include_router(quay.router)
    app.include_router(authorized_emails.router)
    app.include_router(authorized_emails.confirmation)
    app.add_middleware(BodyLimit, settings=runtime.settings)
    install_operations(app)
    # Here, not at the top: the console is the API app's only HTML, and imports the API.
    from dispatcher.console import install_console

    install_console(app, runtime)
    app.add_middleware(FixedHeaders, headers=DOCS_POLICY, paths=DOCS_PAGES)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


# The reference pages may load only from this server. The packaged ReDoc still names a logo
# on a CDN; under this policy the browser never asks for it, so the pages work the same with no
# internet and send nothing outside.
DOCS_POLICY = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' "
        "'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
    )
}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema without the 422 responses it assumes: invalid input answers 400."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema
