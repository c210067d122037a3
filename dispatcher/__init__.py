"""dispatcher: asynchronous notification delivery for container registries.

Producers written in Python call :func:`emit`; nothing is read or connected at import time.
"""

from __future__ import annotations

import atexit
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dispatcher.runtime import Runtime
    from dispatcher.service.emit import EmitResult

from dispatcher.version import __version__

__all__ = ["__version__", "emit"]

_process_runtime: Runtime | None = None
_process_lock = threading.Lock()


def emit(
    repository: str,
    event: str,
    data: dict[str, Any],
    performer: dict[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
) -> EmitResult:
    """Report ``event`` (e.g. ``"repo_push"``) for ``repository`` (``"namespace/name"``).

    Registers the repository if it is new, stores the event with Quay's event data, queues one
    delivery per enabled notification whose filter matches, commits, and rings the workers.
    Uses the process-wide settings (``DISPATCHER_*``) and one runtime per process, made on
    first use with the database migrated and closed at exit. Returns the event id and the
    delivery ids. With ``idempotency_key``, the same report sent again within
    ``DISPATCHER_IDEMPOTENCY_WINDOW`` stores nothing and returns the first result
    (``replayed``): retry with the same key after an error. Raises
    :class:`~dispatcher.errors.InvalidRequestError` for an unknown event or bad data."""
    from dispatcher.service.emit import emit as emit_event

    runtime = _runtime()
    return emit_event(
        runtime.sessions,
        runtime.settings,
        runtime.doorbell,
        repository,
        event,
        data,
        performer,
        idempotency_key=idempotency_key,
    )


def _runtime() -> Runtime:
    global _process_runtime
    with _process_lock:
        if _process_runtime is None:
            from dispatcher.config import get_settings
            from dispatcher.db import ensure_schema
            from dispatcher.runtime import create_runtime
            from dispatcher.worker.bell import doorbell_for

            settings = get_settings()
            _process_runtime = create_runtime(settings, doorbell_for(settings))
            ensure_schema(_process_runtime.engine, settings.database_url)
            atexit.register(_process_runtime.close)
        return _process_runtime
