"""The HTTP API: :func:`create_app` builds it around a :class:`~dispatcher.runtime.Runtime`."""

from __future__ import annotations

from fastapi import FastAPI

from dispatcher import __version__
from dispatcher.api import deliveries, notifications
from dispatcher.api.ops import install_operations
from dispatcher.api.problems import install_problem_handlers
from dispatcher.runtime import Runtime


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
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
    install_operations(app)
    return app
