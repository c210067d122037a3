"""The render context of one delivery of an event's sample data, for the sender tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dispatcher.events import EVENTS, event_data
from dispatcher.senders.base import RenderContext


def sample_context(
    event_name: str,
    *,
    at: datetime,
    delivery_id: str,
    event_config: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    notification_uuid: str = "uuid-1",
    title: str | None = None,
    performer: dict[str, Any] | None = None,
) -> RenderContext:
    """``event_name``'s sample (for ``event_config``, overridden by ``extra``) wrapped as the
    producer does for acme/web on quay.example.com over https."""
    event = EVENTS[event_name]
    fields = {**event.sample(event_config or {}, at), **(extra or {})}
    data = event_data(
        "acme",
        "web",
        fields,
        server_hostname="quay.example.com",
        url_scheme="https",
        subpage=event.subpage(fields),
    )
    return RenderContext(
        event=event,
        data=data,
        namespace="acme",
        repository="web",
        notification_uuid=notification_uuid,
        title=title,
        delivery_id=delivery_id,
        attempt_at=at,
        performer=performer,
    )
