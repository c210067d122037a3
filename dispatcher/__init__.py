"""dispatcher: asynchronous notification delivery for container registries.

Producers written in Python call :func:`emit`; nothing is read or connected at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dispatcher.service.emit import EmitResult

__version__ = "0.1.0"


def emit(
    repository: str,
    event: str,
    data: dict[str, Any],
    performer: dict[str, Any] | None = None,
) -> EmitResult:
    """Report ``event`` (e.g. ``"repo_push"``) for ``repository`` (``"namespace/name"``).

    Registers the repository if it is new, stores the event with Quay's event data, queues one
    delivery per enabled notification whose filter matches, commits, and rings the workers.
    Uses the process-wide settings (``DISPATCHER_*``); the database is migrated on first use.
    Returns the event id and the delivery ids. Raises
    :class:`~dispatcher.errors.InvalidRequestError` for an unknown event or bad data."""
    from dispatcher.service.emit import emit_with_process_runtime

    return emit_with_process_runtime(repository, event, data, performer)
