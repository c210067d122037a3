"""``dispatcher serve``: the API server (plus an in-process worker when no broker is set)."""

from __future__ import annotations

import argparse
import signal
from types import FrameType
from typing import Any


def register(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the API server",
        description="Run the HTTP API. The database is upgraded first. With no "
        "DISPATCHER_BROKER_URL the same process also runs a worker and the scheduler "
        "(the embedded default); with a broker, run `dispatcher worker` and "
        "`dispatcher scheduler` separately.",
    )
    serve.add_argument("--host", help="address to bind (default: DISPATCHER_HOST, 127.0.0.1)")
    serve.add_argument(
        "--port", type=port_number, help="port to bind (default: DISPATCHER_PORT, 8000)"
    )
    serve.set_defaults(handler=_serve)


def port_number(text: str) -> int:
    """A TCP port, 1 to 65535: the socket layer would silently wrap a larger number."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: use 1 to 65535")
    return port


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from dispatcher.api import create_app
    from dispatcher.api.server import server_config
    from dispatcher.config import get_settings
    from dispatcher.db import upgrade
    from dispatcher.ops.logs import configure_logging
    from dispatcher.runtime import create_runtime
    from dispatcher.worker.bell import doorbell_for

    settings = get_settings()
    configure_logging(settings)
    upgrade(settings.database_url)
    runtime = create_runtime(settings, doorbell_for(settings))
    app = create_app(runtime)
    embedded = None
    if settings.embedded:
        from dispatcher.worker.embedded import start_embedded

        embedded = start_embedded(runtime)
    try:
        signal.signal(signal.SIGTERM, _exit_cleanly)
        config = server_config(
            app, settings, host=args.host or settings.host, port=args.port or settings.port
        )
        uvicorn.Server(config).run()
    finally:
        if embedded is not None:
            embedded.stop()
        runtime.close()
    return 0


def _exit_cleanly(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM outside uvicorn's own handling. uvicorn stops gracefully on SIGTERM, restores
    this handler and raises the signal again; exiting through ``finally`` then lets the
    embedded worker finish and record its sends instead of the process dying mid-flight."""
    raise SystemExit(0)
