"""The sender interface every delivery method implements.

A method's module validates a ``config`` at create time (its ``validate_config``, with Quay's
400 messages; see :mod:`dispatcher.senders.registry`). Its sender renders a message purely
from the event and the notification (no network, no database, no clock beyond what the
:class:`RenderContext` carries), and sends it in exactly one attempt, translating library
errors into :class:`~dispatcher.errors.TransientDeliveryError` or
:class:`~dispatcher.errors.PermanentDeliveryError` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

from dispatcher.events import EventType


@dataclass(frozen=True)
class RenderContext:
    """Everything a render may read about one delivery attempt."""

    event: EventType
    data: dict[str, Any]
    namespace: str
    repository: str
    notification_uuid: str
    title: str | None
    delivery_id: str
    attempt_at: datetime
    performer: dict[str, Any] | None = None


@dataclass(frozen=True)
class Receipt:
    """What the target answered to a successful attempt."""

    status_code: int | None = None
    response_excerpt: str | None = None


class Sender(Protocol):
    """One delivery method. ``render`` is pure; ``send`` does the I/O of one attempt."""

    method: ClassVar[str]

    def target_key(self, config: dict[str, Any]) -> str:
        """Where deliveries go (e.g. the URL's host), for per-target concurrency limits."""
        ...

    def describe(self, config: dict[str, Any]) -> str:
        """The target with secrets masked, for logs, errors and operator output."""
        ...

    def render(self, context: RenderContext, config: dict[str, Any]) -> Any:
        """Build the message to send. Raises PermanentDeliveryError if a template fails."""
        ...

    async def send(self, message: Any) -> Receipt:
        """Exactly one attempt, awaited on the worker's event loop (blocking I/O goes to a
        thread). Raises only Transient/PermanentDeliveryError on failure."""
        ...
