"""Rows for delivery-log tests, written straight to the database (no sender involved)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from dispatcher.models import Attempt, Delivery, Event, Notification, utcnow
from dispatcher.service import repositories


def add_notification(
    session: Session,
    repository: str = "acme/web",
    *,
    method: str = "webhook",
    config: dict[str, str] | None = None,
    failures: int = 0,
    disabled: bool = False,
) -> Notification:
    namespace, name = repository.split("/")
    repo = repositories.ensure_repository(session, namespace, name)
    notification = Notification(
        repository_id=repo.id,
        event="repo_push",
        method=method,
        config=config or {"url": "http://example.com/hook"},
        event_config={},
        title=None,
        number_of_failures=failures,
        disabled_at=utcnow() if disabled else None,
    )
    session.add(notification)
    session.flush()
    return notification


def add_delivery(
    session: Session,
    notification: Notification,
    *,
    created_at: datetime | None = None,
    status: str = "succeeded",
    kind: str = "event",
    attempts: int = 1,
    finished_at: datetime | None = None,
) -> Delivery:
    """A delivery of a new event; unless pending it finished one second per attempt after it
    was created, or at ``finished_at``."""
    created = created_at or utcnow()
    event = Event(
        repository_id=notification.repository_id,
        name=notification.event,
        data={"repository": "acme/web", "updated_tags": ["latest"]},
        created_at=created,
    )
    session.add(event)
    session.flush()
    delivery = Delivery(
        notification_id=notification.id,
        event_id=event.id,
        kind=kind,
        status=status,
        attempt_count=attempts,
        next_attempt_at=created,
        created_at=created,
        finished_at=None
        if status == "pending"
        else finished_at or created + timedelta(seconds=attempts),
    )
    session.add(delivery)
    session.flush()
    for number in range(1, attempts + 1):
        last = number == attempts
        ok = last and status == "succeeded"
        session.add(
            Attempt(
                delivery_id=delivery.id,
                number=number,
                started_at=created + timedelta(seconds=number - 1),
                outcome="succeeded" if ok else "transient",
                status_code=200 if ok else 503,
                latency_ms=12.5,
                error=None if ok else "HTTP 503 from example.com",
                response_excerpt="ok" if ok else "busy",
            )
        )
    session.flush()
    return delivery
