"""Claiming due deliveries: the step between the outbox (or a retry's wait) and an attempt.

A delivery is *due* (:func:`due`) when it is pending, its ``next_attempt_at`` has come, and
nobody holds it: no claim, or a claim whose lease ran out (its worker vanished). A claim takes
due rows in one UPDATE and stamps them with a claim token of its own and
``lease_until = now + settings.lease_seconds``, so a delivery is sent once per claim, and an
outcome is only ever written where its token still matches
(:mod:`dispatcher.pipeline.record`). Event deliveries of a disabled notification are marked
``skipped`` (:func:`skipped`) instead of being returned; test deliveries and redeliveries are
sent anyway.

* :func:`claim_due` is what a draining worker calls: up to ``limit`` due deliveries, oldest
  due first (PostgreSQL: one statement, ``FOR UPDATE SKIP LOCKED``, so workers draining at
  once take disjoint batches without waiting for each other);
* :func:`claim` claims given ids (tests, tools).

A claimed delivery comes back as a :class:`Job`: everything its attempt needs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, Text, and_, or_, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session, sessionmaker

from dispatcher.config import Settings
from dispatcher.models import Delivery, Event, Notification, Repository, utcnow
from dispatcher.ops import metrics
from dispatcher.vocabulary import DeliveryKind, DeliveryStatus

DELIVERY_TABLE = cast(Table, Delivery.__table__)


@dataclass(frozen=True)
class Job:
    """One claimed delivery with everything needed to render and send it."""

    delivery_id: str
    claim_token: str
    lease_until: datetime
    kind: str
    attempt_number: int
    notification_id: int
    notification_uuid: str
    method: str
    config: dict[str, Any]
    title: str | None
    event_name: str
    data: dict[str, Any]
    namespace: str
    repository: str
    performer: dict[str, Any] | None = None


def due(now: datetime) -> ColumnElement[bool]:
    """The one definition of a due delivery at ``now``: pending, its time come, and held by
    nobody (no claim, or a claim whose lease has run out)."""
    table = DELIVERY_TABLE
    return and_(
        table.c.status == DeliveryStatus.PENDING,
        table.c.next_attempt_at <= now,
        or_(table.c.claim_token.is_(None), table.c.lease_until < now),
    )


def claim(
    sessions: sessionmaker[Session],
    delivery_ids: Sequence[str],
    settings: Settings,
    *,
    now: datetime | None = None,
) -> list[Job]:
    """Claim the due deliveries among ``delivery_ids`` for ``settings.lease_seconds``.

    Rows held by a live claim, final, or not due are not returned. Event deliveries whose
    notification is disabled are marked ``skipped`` here and not returned."""
    if not delivery_ids:
        return []
    return _claim(sessions, settings, now or utcnow(), ids=list(delivery_ids), limit=None)


def claim_due(
    sessions: sessionmaker[Session], settings: Settings, limit: int, *, now: datetime | None = None
) -> list[Job]:
    """Claim up to ``limit`` due deliveries that nobody holds, oldest due first; the jobs
    come in that order (a rate-limited endpoint gets them in it).

    On PostgreSQL one statement picks the rows with ``FOR UPDATE SKIP LOCKED``, stamps them
    and reads what their jobs need."""
    now = now or utcnow()
    with sessions() as session:
        if session.get_bind().dialect.name == "postgresql":
            # One statement is a transaction by itself: no BEGIN and COMMIT round trips.
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            return _claim_due_postgresql(session, settings, now, limit)
    return _claim(sessions, settings, now, ids=None, limit=limit)


# The columns a claim reads per delivery, in this order (see _jobs).
_CLAIMED_COLUMNS = (
    Delivery.id,
    Delivery.kind,
    Delivery.attempt_count,
    Delivery.event_id,
    Notification.id,
    Notification.uuid,
    Notification.method,
    Notification.config,
    Notification.title,
    Notification.disabled_at,
    Repository.namespace,
    Repository.name,
)

EventParts = tuple[str, dict[str, Any], dict[str, Any] | None]  # name, data, performer


def _claim_due_postgresql(
    session: Session, settings: Settings, now: datetime, limit: int
) -> list[Job]:
    """Pick, stamp and read the claimed deliveries in one round trip. Event data comes as
    text, to be parsed once per event in the batch rather than per delivery."""
    token = str(uuid.uuid4())
    lease_until = now + timedelta(seconds=settings.lease_seconds)
    table = DELIVERY_TABLE
    picked = (
        select(table.c.id)
        .where(due(now))
        .order_by(table.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("picked")
    )
    claimed = (
        update(table)
        .where(table.c.id == picked.c.id)
        .values(claim_token=token, lease_until=lease_until)
        .returning(
            table.c.id,
            table.c.kind,
            table.c.attempt_count,
            table.c.event_id,
            table.c.notification_id,
            table.c.next_attempt_at,
            table.c.created_at,
        )
        .cte("claimed")
    )
    rows = session.execute(
        select(
            claimed.c.id,
            claimed.c.kind,
            claimed.c.attempt_count,
            claimed.c.event_id,
            *_CLAIMED_COLUMNS[4:],
            Event.name,
            sql_cast(Event.data, Text),
            sql_cast(Event.performer, Text),
        )
        .select_from(claimed)
        .join(Notification, Notification.id == claimed.c.notification_id)
        .join(Repository, Repository.id == Notification.repository_id)
        .join(Event, Event.id == claimed.c.event_id)
        .order_by(claimed.c.next_attempt_at, claimed.c.created_at, claimed.c.id)
    ).all()
    live = _skip_disabled(session, rows, now)
    events: dict[str, EventParts] = {}
    for row in live:
        if row[3] not in events:
            events[row[3]] = (row[12], json.loads(row[13]), json.loads(row[14] or "null"))
    return _jobs(live, events, token, lease_until)


def _claim(
    sessions: sessionmaker[Session],
    settings: Settings,
    now: datetime,
    *,
    ids: list[str] | None,
    limit: int | None,
) -> list[Job]:
    token = str(uuid.uuid4())
    lease_until = now + timedelta(seconds=settings.lease_seconds)
    table = DELIVERY_TABLE
    with sessions() as session, session.begin():
        if ids is not None:
            target = table.c.id.in_(ids)
        else:
            # (PostgreSQL claims due work with _claim_due_postgresql instead.)
            pick = select(table.c.id).where(due(now)).order_by(table.c.next_attempt_at)
            target = table.c.id.in_(pick.limit(limit))
        claimed = list(
            session.scalars(
                update(table)
                .where(target, due(now))
                .values(claim_token=token, lease_until=lease_until)
                .returning(table.c.id)
            )
        )
        if not claimed:
            return []
        rows = session.execute(
            select(*_CLAIMED_COLUMNS)
            .join(Notification, Notification.id == Delivery.notification_id)
            .join(Repository, Repository.id == Notification.repository_id)
            .where(Delivery.id.in_(claimed))
            .order_by(Delivery.next_attempt_at, Delivery.created_at, Delivery.id)
        ).all()
        live = _skip_disabled(session, rows, now)
        events = _load_events(session, {row[3] for row in live})
    return _jobs(live, events, token, lease_until)


def _skip_disabled(
    session: Session, rows: Sequence[Sequence[Any]], now: datetime
) -> list[Sequence[Any]]:
    """Mark the event deliveries of disabled notifications among ``rows`` skipped; return the
    others."""
    live = []
    skipped_ids = []
    for row in rows:
        if row[9] is not None and row[1] == DeliveryKind.EVENT:
            skipped_ids.append(row[0])
            metrics.DELIVERIES.labels(method=row[6], outcome=DeliveryStatus.SKIPPED).inc()
        else:
            live.append(row)
    if skipped_ids:
        table = DELIVERY_TABLE
        session.execute(update(table).where(table.c.id.in_(skipped_ids)).values(skipped(now)))
    return live


def skipped(now: datetime) -> dict[str, Any]:
    """The column values of a delivery skipped at ``now`` because its notification is
    disabled (here, or when the notification is disabled with deliveries still pending)."""
    return {
        "status": DeliveryStatus.SKIPPED,
        "finished_at": now,
        "claim_token": None,
        "lease_until": None,
    }


def _jobs(
    rows: Sequence[Sequence[Any]],
    events: Mapping[str, EventParts],
    token: str,
    lease_until: datetime,
) -> list[Job]:
    """One job per claimed row (columns as in ``_CLAIMED_COLUMNS``)."""
    jobs = []
    for row in rows:
        name, data, performer = events[row[3]]
        jobs.append(
            Job(
                delivery_id=row[0],
                claim_token=token,
                lease_until=lease_until,
                kind=row[1],
                attempt_number=row[2] + 1,
                notification_id=row[4],
                notification_uuid=row[5],
                method=row[6],
                config=row[7] or {},
                title=row[8],
                event_name=name,
                data=data,
                namespace=row[10],
                repository=row[11],
                performer=performer,
            )
        )
    return jobs


def _load_events(session: Session, event_ids: set[str]) -> dict[str, EventParts]:
    if not event_ids:
        return {}
    rows = session.execute(
        select(Event.id, Event.name, Event.data, Event.performer).where(
            Event.id.in_(sorted(event_ids))
        )
    ).all()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


__all__ = ["Job", "claim", "claim_due", "due", "skipped"]
