"""Producers: store an event and fan it out to one delivery per matching notification.

:func:`emit` is the one entry point behind ``dispatcher.emit(...)``, ``dispatcher emit`` and
``POST /api/v1/repository/{ns}/{repo}/events``. In one transaction it registers the repository
if it is new, stores the :class:`~dispatcher.models.Event` with Quay's event data, selects the
repository's *enabled* notifications for the event (one query on ``(repository_id, event)``),
keeps those whose ``eventConfig`` filter passes, and writes their deliveries with one bulk
insert. It commits, and only then rings the doorbell, so a worker never looks for a row that is
not yet visible.

``repo_image_expiry`` is different because Quay's payload is per notification: the producer
reports ``{"tags": [{"name": ..., "expires_at": ISO-8601 or epoch seconds}, ...]}``; each
notification gets its own event with the tags expiring within its ``days`` that it has not
announced yet for that expiry time (``tags`` as names, ``expiring_in``, ``notification_uuid``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, Text, and_, bindparam, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dispatcher.bounds import check_text, check_value
from dispatcher.config import Settings
from dispatcher.errors import InvalidRequestError
from dispatcher.events import EventType, event_data, expiry_days, get_event
from dispatcher.models import (
    Delivery,
    Event,
    ExpiryAnnouncement,
    Notification,
    Repository,
    utcnow,
)
from dispatcher.pipeline import outbox
from dispatcher.pipeline.doorbell import Doorbell
from dispatcher.service import idempotency
from dispatcher.service.repositories import ensure_repository, parse_repository_name
from dispatcher.vocabulary import DeliveryKind

EXPIRY_EVENT = "repo_image_expiry"
DELIVERY_TABLE = cast(Table, Delivery.__table__)
EVENT_TABLE = cast(Table, Event.__table__)


@dataclass(frozen=True)
class EmitResult:
    """What one emit stored: the event's id and the deliveries queued for it."""

    event_id: str
    delivery_ids: tuple[str, ...]
    replayed: bool = False  # an earlier emit with the same idempotency key stored it

    @property
    def deliveries(self) -> int:
        return len(self.delivery_ids)


def emit(
    sessions: sessionmaker[Session],
    settings: Settings,
    doorbell: Doorbell,
    repository: str,
    event: str,
    data: Mapping[str, Any],
    performer: Mapping[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
) -> EmitResult:
    """Store ``event`` for ``repository`` (``namespace/name``), fan it out, commit, then ring.

    ``sessions`` is the runtime's session factory. Raises InvalidRequestError (unknown event,
    a failure notice, bad repository name, data that is not an object or breaks
    :mod:`dispatcher.bounds`, bad expiry times, a bad idempotency key); nothing is stored
    then.

    With an ``idempotency_key``, an emit of the same repository and key within
    ``settings.idempotency_window`` stores nothing and returns what the first one stored
    (``replayed``): a producer that got an error (a commit whose answer was lost, say) can
    send the same report again without it being delivered twice. The key is stored in the
    transaction of the event, so either both are or neither is."""
    namespace, name = parse_repository_name(repository)
    check_text(event, "event")
    event_type = get_event(event)
    if event_type.notice:
        raise InvalidRequestError(
            f"{event} is reported by dispatcher itself about its notifications; "
            "a producer cannot emit it"
        )
    if not isinstance(data, Mapping):
        raise InvalidRequestError("Event data must be a JSON object")
    if performer is not None and not isinstance(performer, Mapping):
        raise InvalidRequestError("performer must be a JSON object")
    if idempotency_key is not None:
        idempotency.check_key(idempotency_key)
    limits = {"max_depth": settings.max_json_depth, "max_bytes": settings.max_event_bytes}
    check_value(data, "data", **limits)
    check_value(performer, "performer", **limits)
    with sessions() as session:
        if idempotency_key is not None:
            earlier = _replay(session, settings, namespace, name, idempotency_key)
            if earlier is not None:
                return earlier
        result = fan_out(session, settings, namespace, name, event_type, data, performer)
        try:
            if idempotency_key is not None:
                idempotency.remember(
                    session,
                    settings,
                    namespace,
                    name,
                    idempotency_key,
                    result.delivery_ids,
                    event_id=result.event_id,
                )
            session.commit()
        except IntegrityError:
            # Another emit with the same key committed first: answer with what it stored.
            session.rollback()
            earlier = _replay(session, settings, namespace, name, str(idempotency_key))
            if earlier is None:
                raise
            return earlier
    if result.delivery_ids:
        doorbell.ring(result.delivery_ids)
    return result


def _replay(
    session: Session, settings: Settings, namespace: str, name: str, key: str
) -> EmitResult | None:
    earlier = idempotency.replay(session, settings, namespace, name, key)
    if earlier is None:
        return None
    event_id, delivery_ids = earlier
    return EmitResult(event_id, delivery_ids, replayed=True)


class RepositoryKey(NamedTuple):
    id: int
    namespace: str
    name: str


# The repository and its enabled notifications of one event, in one round trip: no row means
# no such repository, one row with NULL notification columns a repository without any.
# event_config comes as text: most are "{}", and parsing 10,000 of them would cost more than
# the rest of the query.
_SUBSCRIBERS = (
    select(Repository.id, Notification.id, Notification.uuid, Notification.event_config.cast(Text))
    .select_from(Repository)
    .outerjoin(
        Notification,
        and_(
            Notification.repository_id == Repository.id,
            Notification.event == bindparam("event"),
            Notification.disabled_at.is_(None),
        ),
    )
    .where(Repository.namespace == bindparam("namespace"), Repository.name == bindparam("name"))
)


def fan_out(
    session: Session,
    settings: Settings,
    namespace: str,
    name: str,
    event_type: EventType,
    data: Mapping[str, Any],
    performer: Mapping[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> EmitResult:
    """Store the event and its deliveries in ``session`` without committing; register the
    repository ``namespace/name`` if it is new."""
    now = now or utcnow()
    found = session.execute(
        _SUBSCRIBERS, {"namespace": namespace, "name": name, "event": event_type.name}
    ).all()
    if found:
        repository = RepositoryKey(found[0][0], namespace, name)
    else:
        repository = RepositoryKey(ensure_repository(session, namespace, name).id, namespace, name)
    rows = [(nid, uuid_, _event_config(raw)) for _, nid, uuid_, raw in found if nid is not None]
    envelope = _envelope(settings, repository, event_type, data)
    event = outbox.new_event(repository.id, event_type.name, envelope, performer, now)
    if event_type.name == EXPIRY_EVENT:
        event_id = outbox.add_event(session, event)
        targets = _expiry_targets(session, settings, repository, rows, data, performer, now)
        delivery_ids = outbox.add_deliveries(
            session, [n for n, _ in targets], [e for _, e in targets], DeliveryKind.EVENT, now
        )
        return EmitResult(event_id, tuple(delivery_ids))
    matching = [
        notification_id
        for notification_id, _uuid, config in rows
        if event_type.should_deliver(config or {}, envelope, settings)
    ]
    delivery_ids = outbox.add_event_with_deliveries(session, event, matching, DeliveryKind.EVENT)
    return EmitResult(event["id"], tuple(delivery_ids))


def _event_config(raw: str | None) -> dict[str, Any]:
    if not raw or raw == "{}":
        return {}
    config = json.loads(raw)
    return config if isinstance(config, dict) else {}


def _envelope(
    settings: Settings, repository: RepositoryKey, event_type: EventType, data: Mapping[str, Any]
) -> dict[str, Any]:
    return event_data(
        repository.namespace,
        repository.name,
        data,
        server_hostname=settings.server_hostname,
        url_scheme=settings.preferred_url_scheme,
        subpage=event_type.subpage(dict(data)),
    )


# -- repo_image_expiry ------------------------------------------------------------------------


def _expiry_targets(
    session: Session,
    settings: Settings,
    repository: RepositoryKey,
    rows: Sequence[Any],
    data: Mapping[str, Any],
    performer: Mapping[str, Any] | None,
    now: datetime,
) -> list[tuple[int, str]]:
    """Per notification, the tags to announce now; records the announcements and stores one
    event per notification. Returns ``(notification_id, event_id)`` pairs.

    A tag is announced by the call whose announcement row is inserted: a concurrent emit of
    the same report inserts nothing (the unique constraint decides) and announces nothing."""
    tags = parse_expiring_tags(data.get("tags"))
    if not tags or not rows:
        return []
    wanted: dict[tuple[int, str, datetime], None] = {}
    days_of: dict[int, int] = {}
    for notification_id, _uuid, config in rows:
        days = expiry_days(config or {})
        if days is None:
            continue
        days_of[notification_id] = days
        horizon = now + timedelta(days=days)
        wanted.update(
            ((notification_id, tag, expires_at), None)
            for tag, expires_at in tags
            if now < expires_at <= horizon
        )
    claimed = _claim_announcements(session, list(wanted), now)
    due: dict[int, list[str]] = {}
    for key in wanted:  # in report order
        if key in claimed:
            due.setdefault(key[0], []).append(key[1])
    event_type = get_event(EXPIRY_EVENT)
    targets: list[tuple[int, str]] = []
    for notification_id, notification_uuid, _config in rows:
        if notification_id not in due:
            continue
        extra = {
            "tags": due[notification_id],
            "expiring_in": f"{days_of[notification_id]} days",
            "notification_uuid": notification_uuid,
        }
        envelope = _envelope(settings, repository, event_type, extra)
        event = outbox.new_event(repository.id, EXPIRY_EVENT, envelope, performer, now)
        targets.append((notification_id, outbox.add_event(session, event)))
    return targets


def _claim_announcements(
    session: Session, keys: Sequence[tuple[int, str, datetime]], now: datetime
) -> set[tuple[int, str, datetime]]:
    """Insert an announcement per ``(notification_id, tag, expires_at)`` unless one exists;
    return the keys inserted by this call."""
    if not keys:
        return set()
    dialect = session.get_bind().dialect.name
    dialect_insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        dialect_insert(ExpiryAnnouncement)
        .on_conflict_do_nothing(index_elements=["notification_id", "tag", "expires_at"])
        .returning(
            ExpiryAnnouncement.notification_id,
            ExpiryAnnouncement.tag,
            ExpiryAnnouncement.expires_at,
        )
    )
    inserted = session.execute(
        statement,
        [
            {"notification_id": owner, "tag": tag, "expires_at": at, "created_at": now}
            for owner, tag, at in keys
        ],
    ).all()
    return {(row[0], row[1], row[2]) for row in inserted}


def parse_expiring_tags(value: Any) -> list[tuple[str, datetime]]:
    """``[{"name", "expires_at"}, ...]`` → ``[(name, aware UTC datetime)]``."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequestError("repo_image_expiry data 'tags' must be a list")
    tags: list[tuple[str, datetime]] = []
    for item in value:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise InvalidRequestError(
                "repo_image_expiry tags must be objects with 'name' and 'expires_at'"
            )
        tags.append((item["name"], _parse_time(item.get("expires_at"), item["name"])))
    return tags


def _parse_time(value: Any, tag: str) -> datetime:
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise InvalidRequestError(
        f"Tag '{tag}': 'expires_at' must be an ISO-8601 time or epoch seconds"
    )


__all__ = [
    "EmitResult",
    "emit",
    "fan_out",
    "parse_expiring_tags",
]
