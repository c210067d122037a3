"""The outbox: where deliveries are born. The one writer of new ``deliveries`` rows.

A delivery starts here, pending and due at once, in the same transaction as the event it
carries; the caller commits and only then rings the doorbell, so a worker never looks for a
row it cannot see yet. No lease is set: a ring lost before a worker claims the row is made
good by the sweep.

* :func:`add_event_with_deliveries` stores an event and one delivery of it per notification
  (a producer's fan-out, a test): on PostgreSQL in one statement, elsewhere in two.
* :func:`add_deliveries` adds deliveries of events already stored (a redelivery, a recovery of
  failed or skipped deliveries, the per-notification events of ``repo_image_expiry``).
* :func:`discard_deliveries` deletes the deliveries of notifications being deleted.

Ids are made here, so nothing is read back but which recoveries were stored; each id is the
delivery's ``webhook-id`` for good.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, delete, insert, select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from dispatcher.models import Attempt, Delivery, Event, UTCDateTime
from dispatcher.vocabulary import DeliveryStatus

DELIVERY_TABLE = cast(Table, Delivery.__table__)
EVENT_TABLE = cast(Table, Event.__table__)


def new_event(
    repository_id: int,
    name: str,
    data: dict[str, Any],
    performer: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    """A new event's column values, with a new id (for :func:`add_event_with_deliveries`)."""
    return {
        "id": str(uuid.uuid4()),
        "repository_id": repository_id,
        "name": name,
        "data": data,
        "performer": dict(performer) if performer is not None else None,
        "created_at": now,
    }


def add_event(session: Session, event: dict[str, Any]) -> str:
    """Insert ``event`` (a :func:`new_event`); its id."""
    session.execute(insert(Event), [event])
    return str(event["id"])


# The event and its deliveries in one statement (the deliveries' foreign key is checked at the
# statement's end, when the event row exists); two arrays, not a statement per row.
_EVENT_AND_DELIVERIES_POSTGRESQL = text(
    "WITH stored_event AS ("
    " INSERT INTO events (id, repository_id, name, data, performer, created_at)"
    " VALUES (:id, :repository_id, :name, :data, :performer, :created_at))"
    " INSERT INTO deliveries (id, notification_id, event_id, kind, status, attempt_count,"
    " next_attempt_at, created_at)"
    " SELECT d.id, d.notification_id, :id, :kind, :pending, 0, :created_at, :created_at"
    " FROM unnest(CAST(:ids AS varchar[]), CAST(:notification_ids AS integer[]))"
    " AS d(id, notification_id)"
).bindparams(
    bindparam("data", type_=EVENT_TABLE.c.data.type),
    bindparam("performer", type_=EVENT_TABLE.c.performer.type),
    bindparam("created_at", type_=UTCDateTime()),
)


def add_event_with_deliveries(
    session: Session, event: dict[str, Any], notification_ids: Sequence[int], kind: str
) -> list[str]:
    """Insert ``event`` (a :func:`new_event`) and a pending delivery of it of ``kind`` per
    notification; the deliveries' ids, in the order of ``notification_ids``."""
    if notification_ids and session.get_bind().dialect.name == "postgresql":
        ids = [str(uuid.uuid4()) for _ in notification_ids]
        session.execute(
            _EVENT_AND_DELIVERIES_POSTGRESQL,
            {
                **event,
                "ids": ids,
                "notification_ids": list(notification_ids),
                "kind": kind,
                "pending": DeliveryStatus.PENDING,
            },
        )
        return ids
    add_event(session, event)
    events = [event["id"]] * len(notification_ids)
    return add_deliveries(session, notification_ids, events, kind, event["created_at"])


_DELIVERIES_POSTGRESQL = text(
    "INSERT INTO deliveries (id, notification_id, event_id, kind, status, attempt_count,"
    " next_attempt_at, created_at)"
    " SELECT d.id, d.notification_id, d.event_id, :kind, :pending, 0, :now, :now"
    " FROM unnest(CAST(:ids AS varchar[]), CAST(:notification_ids AS integer[]),"
    " CAST(:event_ids AS varchar[])) AS d(id, notification_id, event_id)"
).bindparams(bindparam("now", type_=UTCDateTime()))

# A recovery of a delivery already recovered (by a call running at the same time) is not
# stored: the unique index on recovers_id decides, and RETURNING says which rows were.
_RECOVERIES_POSTGRESQL = text(
    "INSERT INTO deliveries (id, notification_id, event_id, kind, status, attempt_count,"
    " next_attempt_at, created_at, recovers_id)"
    " SELECT d.id, d.notification_id, d.event_id, :kind, :pending, 0, :now, :now, d.recovers_id"
    " FROM unnest(CAST(:ids AS varchar[]), CAST(:notification_ids AS integer[]),"
    " CAST(:event_ids AS varchar[]), CAST(:recovers_ids AS varchar[]))"
    " AS d(id, notification_id, event_id, recovers_id)"
    " ON CONFLICT (recovers_id) DO NOTHING RETURNING id"
).bindparams(bindparam("now", type_=UTCDateTime()))
_RECOVERIES_SQLITE = (
    sqlite_insert(DELIVERY_TABLE)
    .on_conflict_do_nothing(index_elements=["recovers_id"])
    .returning(DELIVERY_TABLE.c.id)
)


def add_deliveries(
    session: Session,
    notification_ids: Sequence[int],
    event_ids: Sequence[str],
    kind: str,
    now: datetime,
    *,
    recovers_ids: Sequence[str] | None = None,
) -> list[str]:
    """Insert one pending delivery of ``kind`` per notification, the i-th of ``event_ids[i]``,
    with one statement; their ids.

    With ``recovers_ids`` the i-th delivery recovers delivery ``recovers_ids[i]``: it is not
    inserted when that delivery is recovered already, and only the ids of those inserted are
    returned (in the order given)."""
    if not notification_ids:
        return []
    ids = [str(uuid.uuid4()) for _ in notification_ids]
    recovers: list[str | None] = [None] * len(ids) if recovers_ids is None else [*recovers_ids]
    values: dict[str, Any] = {
        "ids": ids,
        "notification_ids": list(notification_ids),
        "event_ids": list(event_ids),
        "recovers_ids": recovers,
        "kind": kind,
        "pending": DeliveryStatus.PENDING,
        "now": now,
    }
    postgresql = session.get_bind().dialect.name == "postgresql"
    if recovers_ids is None:
        if postgresql:
            session.execute(_DELIVERIES_POSTGRESQL, values)
        else:
            session.execute(insert(DELIVERY_TABLE), _rows(values))
        return ids
    if postgresql:
        inserted = set(session.scalars(_RECOVERIES_POSTGRESQL, values))
    else:
        inserted = set(session.scalars(_RECOVERIES_SQLITE, _rows(values)))
    return [delivery_id for delivery_id in ids if delivery_id in inserted]


def _rows(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of :func:`add_deliveries`' column ``values``, one dictionary each."""
    return [
        {
            "id": delivery_id,
            "notification_id": notification_id,
            "event_id": event_id,
            "kind": values["kind"],
            "status": DeliveryStatus.PENDING,
            "attempt_count": 0,
            "next_attempt_at": values["now"],
            "created_at": values["now"],
            "recovers_id": recovers_id,
        }
        for delivery_id, notification_id, event_id, recovers_id in zip(
            values["ids"],
            values["notification_ids"],
            values["event_ids"],
            values["recovers_ids"],
            strict=True,
        )
    ]


def discard_deliveries(session: Session, notification_ids: Select[int] | list[int]) -> None:
    """Delete every delivery of ``notification_ids`` (ids, or a subquery of them), with their
    attempts: their notification is going. Without relying on ON DELETE CASCADE."""
    doomed = select(Delivery.id).where(Delivery.notification_id.in_(notification_ids))
    session.execute(delete(Attempt).where(Attempt.delivery_id.in_(doomed)))
    session.execute(delete(Delivery).where(Delivery.notification_id.in_(notification_ids)))


__all__ = [
    "add_deliveries",
    "add_event",
    "add_event_with_deliveries",
    "discard_deliveries",
    "new_event",
]
