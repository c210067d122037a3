"""One delivery attempt: claim → render → send → (recorded by :mod:`dispatcher.pipeline.record`).

Knows nothing of Celery; the worker task and the embedded worker both call these functions.

State machine of a :class:`~dispatcher.models.Delivery`::

    pending ──claim──▶ pending + claim_token, lease_until = now + lease_seconds
       ▲                 │ attempt
       │   transient,    ├── success ──────────────▶ succeeded   (counter := 0)
       │   retries left  ├── permanent / exhausted ─▶ failed      (counter += 1)
       └─ next_attempt_at├── internal error ───────▶ failed      (counter untouched)
          = now + delay  └── target busy ─────────▶ pending again, no attempt counted

* :func:`claim_due` (what a draining worker calls) and :func:`claim` (for given ids) take due,
  unclaimed rows in one UPDATE and stamp them with one claim token; rows already final, not
  yet due or held by a live lease are left alone, so a delivery is sent once per claim. Event
  deliveries of a disabled notification end ``skipped``; test deliveries and redeliveries are
  sent anyway.
* :func:`attempt` renders and sends one claimed delivery and returns an :class:`Outcome`; it
  never touches the database. Only ``TransientDeliveryError`` is retried; any other exception
  of a sender is a programming error: logged, the delivery fails as "internal error".
* Outcomes are written in batches by :func:`dispatcher.pipeline.record.record`, and only where the
  claim token still matches (a worker whose lease expired changes nothing).
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import Table, bindparam, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from dispatcher.config import Settings
from dispatcher.errors import DeliveryError, TransientDeliveryError
from dispatcher.events import get_event
from dispatcher.models import Delivery, Event, Notification, Repository, UTCDateTime, utcnow
from dispatcher.ops import metrics
from dispatcher.senders.base import RenderContext, Sender

DELIVERY_TABLE = cast(Table, Delivery.__table__)

log = logging.getLogger(__name__)

Result = Literal["succeeded", "transient", "permanent", "internal", "released"]

ERROR_MAX_CHARS = 1000
INTERNAL_ERROR = "internal error"
DISABLED_SKIP = "notification disabled"


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


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed delivery. ``released`` is no attempt: the delivery goes back
    to pending after ``delay`` seconds (its target was saturated or its lease ran short)."""

    job: Job
    result: Result
    started_at: datetime
    latency_ms: float = 0.0
    status_code: int | None = None
    error: str | None = None
    response_excerpt: str | None = None
    retry_after: float | None = None
    delay: float = field(default=0.0)


def claim(
    sessions: sessionmaker[Session],
    delivery_ids: Sequence[str],
    settings: Settings,
    *,
    now: datetime | None = None,
) -> list[Job]:
    """Claim the due pending deliveries among ``delivery_ids`` for ``settings.lease_seconds``.

    Rows held by a live claim, final, or not due are not returned. Event deliveries whose
    notification is disabled are marked ``skipped`` here and not returned."""
    if not delivery_ids:
        return []
    return _claim(sessions, settings, now or utcnow(), ids=list(delivery_ids), limit=None)


def claim_due(
    sessions: sessionmaker[Session], settings: Settings, limit: int, *, now: datetime | None = None
) -> list[Job]:
    """Claim up to ``limit`` due deliveries that nobody holds, oldest due first.

    On PostgreSQL one statement picks the rows with ``FOR UPDATE SKIP LOCKED`` (so workers
    draining at the same time take disjoint batches without waiting for each other), stamps
    them and reads what their jobs need."""
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

# Pick, stamp and read the claimed deliveries in one round trip, with _CLAIMED_COLUMNS first.
# Event data comes as text, to be parsed once per event in the batch rather than per delivery.
_CLAIM_DUE_POSTGRESQL = text(
    "WITH picked AS ("
    " SELECT id FROM deliveries"
    " WHERE status = 'pending' AND next_attempt_at <= :now"
    " AND (claim_token IS NULL OR lease_until < :now)"
    " ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED"
    "), claimed AS ("
    " UPDATE deliveries AS d SET claim_token = :token, lease_until = :lease_until"
    " FROM picked WHERE d.id = picked.id"
    " RETURNING d.id, d.kind, d.attempt_count, d.event_id, d.notification_id"
    ")"
    " SELECT c.id, c.kind, c.attempt_count, c.event_id, n.id, n.uuid, n.method, n.config,"
    " n.title, n.disabled_at, r.namespace, r.name,"
    " e.name, CAST(e.data AS text), CAST(e.performer AS text)"
    " FROM claimed AS c"
    " JOIN notifications AS n ON n.id = c.notification_id"
    " JOIN repositories AS r ON r.id = n.repository_id"
    " JOIN events AS e ON e.id = c.event_id"
).bindparams(bindparam("now", type_=UTCDateTime()), bindparam("lease_until", type_=UTCDateTime()))

EventParts = tuple[str, dict[str, Any], dict[str, Any] | None]  # name, data, performer


def _claim_due_postgresql(
    session: Session, settings: Settings, now: datetime, limit: int
) -> list[Job]:
    token = str(uuid.uuid4())
    lease_until = now + timedelta(seconds=settings.lease_seconds)
    rows = session.execute(
        _CLAIM_DUE_POSTGRESQL,
        {"now": now, "limit": limit, "token": token, "lease_until": lease_until},
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
    claimable = (
        table.c.status == "pending",
        table.c.next_attempt_at <= now,
        or_(table.c.claim_token.is_(None), table.c.lease_until < now),
    )
    with sessions() as session, session.begin():
        if ids is not None:
            target = table.c.id.in_(ids)
        else:
            # (PostgreSQL claims due work with _CLAIM_DUE_POSTGRESQL instead.)
            pick = (
                select(table.c.id).where(*claimable).order_by(table.c.next_attempt_at).limit(limit)
            )
            target = table.c.id.in_(pick)
        claimed = list(
            session.scalars(
                update(table)
                .where(target, *claimable)
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
        if row[9] is not None and row[1] == "event":
            skipped_ids.append(row[0])
            metrics.DELIVERIES.labels(method=row[6], outcome="skipped").inc()
        else:
            live.append(row)
    if skipped_ids:
        _skip(session, skipped_ids, now)
    return live


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


def skipped(now: datetime) -> dict[str, Any]:
    """The column values of a delivery skipped because its notification is disabled."""
    return {
        "status": "skipped",
        "finished_at": now,
        "claim_token": None,
        "lease_until": None,
        "last_error": DISABLED_SKIP,
    }


def _skip(session: Session, delivery_ids: Sequence[str], now: datetime) -> None:
    table = DELIVERY_TABLE
    session.execute(update(table).where(table.c.id.in_(list(delivery_ids))).values(skipped(now)))


async def attempt(
    job: Job, registry: Mapping[str, Sender], *, now: datetime | None = None
) -> Outcome:
    """Render and send ``job`` once; classify what happened. No database access."""
    started_at = now or utcnow()
    sender = registry.get(job.method)
    if sender is None:
        log.error("delivery %s: no sender for method %r", job.delivery_id, job.method)
        return Outcome(job, "internal", started_at, error=INTERNAL_ERROR)
    clock = time.perf_counter()
    try:
        context = RenderContext(
            event=get_event(job.event_name),
            data=job.data,
            namespace=job.namespace,
            repository=job.repository,
            notification_uuid=job.notification_uuid,
            title=job.title,
            delivery_id=job.delivery_id,
            attempt_at=started_at,
            performer=job.performer,
        )
        message = sender.render(context, job.config)
        clock = time.perf_counter()
        receipt = await sender.send(message)
    except DeliveryError as exc:  # the retry decision lives in the type
        return Outcome(
            job,
            "transient" if isinstance(exc, TransientDeliveryError) else "permanent",
            started_at,
            latency_ms=_elapsed_ms(clock),
            status_code=exc.status_code,
            error=trim(exc.message, ERROR_MAX_CHARS),
            response_excerpt=exc.response_excerpt,
            retry_after=exc.retry_after if isinstance(exc, TransientDeliveryError) else None,
        )
    except Exception:
        # A sender may raise only the two delivery errors; anything else is our bug. It must
        # not retry forever nor charge the notification, and it must be visible in the logs.
        log.exception("delivery %s: internal error in %s sender", job.delivery_id, job.method)
        return Outcome(
            job, "internal", started_at, latency_ms=_elapsed_ms(clock), error=INTERNAL_ERROR
        )
    return Outcome(
        job,
        "succeeded",
        started_at,
        latency_ms=_elapsed_ms(clock),
        status_code=receipt.status_code,
        response_excerpt=receipt.response_excerpt,
    )


def released(job: Job, delay: float, *, now: datetime | None = None) -> Outcome:
    """An outcome that hands ``job`` back to pending after ``delay`` s without an attempt."""
    return Outcome(job, "released", now or utcnow(), delay=delay)


def retry_delay(
    attempt_number: int,
    settings: Settings,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before retrying after failed attempt ``attempt_number`` (1-based), or
    None when the schedule is exhausted.

    The schedule's delay is scaled by a factor in ``[1 - retry_jitter, 1 + retry_jitter]``; a
    ``Retry-After`` the target sent is honoured (never retried sooner), capped at
    ``retry_after_max``."""
    delays = settings.retry_delays
    if attempt_number > len(delays):
        return None
    jitter = settings.retry_jitter
    factor = 1.0 + (rng or random).uniform(-jitter, jitter) if jitter else 1.0
    delay = delays[attempt_number - 1] * factor
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.retry_after_max))
    return max(delay, 0.0)


def trim(text: str | None, limit: int) -> str | None:
    """``text`` cut to ``limit`` characters, marked when cut."""
    if text is None or len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…"


def _elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


__all__ = [
    "Job",
    "Outcome",
    "attempt",
    "claim",
    "claim_due",
    "released",
    "retry_delay",
    "trim",
]
