"""The delivery log: list, read and redeliver one notification's deliveries, and recover the
ones that failed or were skipped in a window of time.

What the API's ``…/notification/{uuid}/deliveries`` routes and ``dispatcher deliveries`` call.
Pages are newest first and keyed on ``(created_at, id)``; the cursor is opaque to callers.
A redelivery is a new delivery (kind ``redelivery``, a new id and so a new ``webhook-id``) of
the same stored event; like a test it is sent even while the notification is disabled. A
recovery is a redelivery that names the delivery it recovers (``recovers_id``, unique), so
that no delivery is recovered twice.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, selectinload

from dispatcher.bounds import is_uuid
from dispatcher.config import Settings
from dispatcher.errors import InvalidRequestError, NotFoundError, echo
from dispatcher.models import (
    Attempt,
    Delivery,
    Notification,
    utcnow,
)
from dispatcher.pipeline import outbox
from dispatcher.pipeline.doorbell import Doorbell
from dispatcher.vocabulary import DeliveryKind, DeliveryStatus

# What a recovery sends again: deliveries that ended without reaching their receiver.
RECOVERABLE = (DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)
# Batches a recovery reads again after the retention prune took an original from under it.
MAX_CONFLICTS = 3
# The ISO-8601 times a caller may write: a date, a time to the minute, second or microsecond,
# and an offset or Z (``fromisoformat`` alone would accept a trailing NUL).
_ISO_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?",
    re.ASCII,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryPage:
    """One page of a delivery log; ``next_cursor`` is None on the last page."""

    deliveries: Sequence[Delivery]
    next_cursor: str | None


def list_deliveries(
    session: Session,
    notification: Notification,
    settings: Settings,
    *,
    status: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> DeliveryPage:
    """The notification's deliveries, newest first, with their attempts and event loaded.

    Raises InvalidRequestError for an unknown ``status``, a ``limit`` outside
    1..``delivery_log_max_limit`` or a cursor this function did not hand out."""
    size = settings.delivery_log_default_limit if limit is None else limit
    if not 1 <= size <= settings.delivery_log_max_limit:
        raise InvalidRequestError(
            f"limit must be between 1 and {settings.delivery_log_max_limit}, not {size}"
        )
    query = (
        select(Delivery)
        .where(Delivery.notification_id == notification.id)
        .options(selectinload(Delivery.attempts), selectinload(Delivery.event))
        .order_by(Delivery.created_at.desc(), Delivery.id.desc())
        .limit(size + 1)
    )
    if status is not None:
        if status not in set(DeliveryStatus):
            raise InvalidRequestError(
                f"Unknown delivery status '{echo(status)}': use one of {', '.join(DeliveryStatus)}"
            )
        query = query.where(Delivery.status == status)
    if cursor:
        created_at, last_id = decode_cursor(cursor)
        query = query.where(
            or_(
                Delivery.created_at < created_at,
                and_(Delivery.created_at == created_at, Delivery.id < last_id),
            )
        )
    rows = session.scalars(query).all()
    page, more = rows[:size], len(rows) > size
    next_cursor = encode_cursor(page[-1]) if more else None
    return DeliveryPage(deliveries=page, next_cursor=next_cursor)


def get_delivery(session: Session, notification: Notification, delivery_id: str) -> Delivery:
    """One delivery of this notification; an id of another notification is not found."""
    if not is_uuid(delivery_id):
        raise NotFoundError(f"No delivery {echo(delivery_id)} for notification {notification.uuid}")
    delivery = session.scalars(
        select(Delivery)
        .where(Delivery.id == delivery_id, Delivery.notification_id == notification.id)
        .options(selectinload(Delivery.attempts), selectinload(Delivery.event))
    ).one_or_none()
    if delivery is None:
        raise NotFoundError(f"No delivery {echo(delivery_id)} for notification {notification.uuid}")
    return delivery


def find_delivery(session: Session, delivery_id: str) -> Delivery:
    """A delivery by id alone, whatever its notification (for operators)."""
    delivery = session.get(Delivery, delivery_id) if is_uuid(delivery_id) else None
    if delivery is None:
        raise NotFoundError(f"No delivery {echo(delivery_id)}")
    return delivery


def redeliver(session: Session, original: Delivery, doorbell: Doorbell) -> Delivery:
    """Queue a new delivery of ``original``'s event, commit, then ring.

    The new delivery has its own id (its ``webhook-id``) and kind ``redelivery``."""
    (delivery_id,) = outbox.add_deliveries(
        session,
        [original.notification_id],
        [original.event_id],
        DeliveryKind.REDELIVERY,
        utcnow(),
    )
    session.commit()
    doorbell.ring([delivery_id])
    return get_delivery_by_id(session, delivery_id)


@dataclass(frozen=True)
class Recovery:
    """What :func:`recover` queued: the new deliveries' ids, oldest recovered delivery first."""

    delivery_ids: Sequence[str]

    @property
    def count(self) -> int:
        return len(self.delivery_ids)


def recover(
    session: Session,
    notification: Notification,
    settings: Settings,
    doorbell: Doorbell,
    since: datetime,
    until: datetime | None = None,
) -> Recovery:
    """Queue a new delivery (kind ``redelivery``) of the event of each delivery of
    ``notification`` that ended failed or skipped at ``since`` or later and before ``until``
    (aware times; ``until`` defaults to now) and that no delivery recovers yet, oldest first.
    Works in batches of ``settings.recovery_batch_size``, committing and then ringing after
    each.

    Each delivery is recovered at most once, even by two calls at once, so a second identical
    call recovers nothing new; a recovery that fails in turn may be recovered by a later call.
    Test deliveries are left alone (their event is a sample). Like a redelivery, a recovery is
    sent even while the notification is disabled.

    Raises InvalidRequestError unless ``since`` is before ``until`` and the window is no longer
    than the retention window."""
    started = utcnow()
    until = started if until is None else until
    check_window(since, until, settings)
    # Deliveries that end from here on (this call's own recoveries among them) are not
    # candidates, so the loop ends even when recoveries fail again at once.
    candidates = _unrecovered(notification, since, min(until, started))
    recovered: list[str] = []
    notification_id, conflicts = notification.id, 0
    while True:
        originals = session.execute(candidates.limit(settings.recovery_batch_size)).all()
        if not originals:
            break
        try:
            ids = outbox.add_deliveries(
                session,
                [notification_id] * len(originals),
                [row.event_id for row in originals],
                DeliveryKind.REDELIVERY,
                utcnow(),
                recovers_ids=[row.id for row in originals],
            )
            session.commit()
        except IntegrityError:
            # An original (or its event) was pruned between the read and the insert: what
            # is left is read again.
            session.rollback()
            conflicts += 1
            if conflicts > MAX_CONFLICTS:
                raise
            continue
        doorbell.ring(ids)
        recovered += ids
        if len(originals) < settings.recovery_batch_size:
            break
    if recovered:
        log.info("recovered %d deliveries of notification %s", len(recovered), notification.uuid)
    return Recovery(delivery_ids=recovered)


def _unrecovered(notification: Notification, since: datetime, before: datetime) -> Select[str, str]:
    """The ids and events of the deliveries :func:`recover` sends again, oldest first."""
    recovery = aliased(Delivery)
    return (
        select(Delivery.id, Delivery.event_id)
        .where(
            Delivery.notification_id == notification.id,
            Delivery.status.in_(RECOVERABLE),
            Delivery.kind != DeliveryKind.TEST,
            Delivery.finished_at >= since,
            Delivery.finished_at < before,
            ~exists().where(recovery.recovers_id == Delivery.id),
        )
        .order_by(Delivery.finished_at, Delivery.id)
    )


def check_window(since: datetime, until: datetime, settings: Settings) -> None:
    """InvalidRequestError unless ``since`` is before ``until`` and they are at most the
    retention window apart (deliveries older than that are pruned)."""
    if since >= until:
        raise InvalidRequestError(f"'since' ({_iso(since)}) must be before 'until' ({_iso(until)})")
    if until - since > timedelta(seconds=settings.retention_seconds):
        raise InvalidRequestError(
            "From 'since' to 'until' may be at most the retention window, "
            f"{settings.delivery_retention}: older deliveries are pruned"
        )


def parse_time(text: str, name: str) -> datetime:
    """``text``, an ISO-8601 time (``2026-12-01T08:00:00Z``; one without an offset is UTC), as
    an aware UTC time; InvalidRequestError naming the field ``name`` if it is not one."""
    if _ISO_TIME.fullmatch(text):
        try:
            parsed = datetime.fromisoformat(text)
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except (ValueError, OverflowError):
            pass
    raise InvalidRequestError(
        f"'{name}' must be an ISO-8601 time such as 2026-12-01T08:00:00Z, not '{echo(text)}'"
    )


def get_delivery_by_id(session: Session, delivery_id: str) -> Delivery:
    delivery = session.scalars(
        select(Delivery)
        .where(Delivery.id == delivery_id)
        .options(selectinload(Delivery.attempts), selectinload(Delivery.event))
    ).one()
    return delivery


# -- views and cursors ------------------------------------------------------------------------


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    """The JSON shape of one delivery in the log (API and ``--json`` output)."""
    return {
        "id": delivery.id,
        "event": delivery.event.name,
        "is_test": delivery.is_test,
        "status": delivery.status,
        "attempts": [attempt_view(attempt) for attempt in delivery.attempts],
        "created": _iso(delivery.created_at),
        "finished": _iso(delivery.finished_at),
    }


def attempt_view(attempt: Attempt) -> dict[str, Any]:
    return {
        "time": _iso(attempt.started_at),
        "status_code": attempt.status_code,
        "latency_ms": round(attempt.latency_ms, 1),
        "error": attempt.error,
        "response_excerpt": attempt.response_excerpt,
    }


def encode_cursor(delivery: Delivery) -> str:
    raw = json.dumps([delivery.created_at.isoformat(), delivery.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


# Cursors this module makes are about 100 characters long.
CURSOR_MAX_CHARS = 256
_INVALID_CURSOR = "Invalid cursor: pass the next_cursor of a previous page"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The ``(created_at, id)`` a cursor points after; InvalidRequestError if it is not ours."""
    if len(cursor) > CURSOR_MAX_CHARS:
        raise InvalidRequestError(_INVALID_CURSOR)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, delivery_id = json.loads(raw)
        created_at = datetime.fromisoformat(created)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, RecursionError):
        raise InvalidRequestError(_INVALID_CURSOR) from None
    if created_at.tzinfo is None or not isinstance(delivery_id, str):
        raise InvalidRequestError(_INVALID_CURSOR)
    if not is_uuid(delivery_id):
        raise InvalidRequestError(_INVALID_CURSOR)
    return created_at, delivery_id


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
