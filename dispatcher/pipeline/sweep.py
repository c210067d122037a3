"""The sweep: the periodic work that makes the doorbell reliable and keeps the log bounded.

Workers are only told about work by the doorbell, and a ring can be lost (a broker restart, a
worker killed while draining) or never sent (a retry whose time has come, a target that was
busy). :func:`sweep` counts the deliveries that are due (:func:`~dispatcher.pipeline.claim.due`:
pending, their time come, held by nobody or by a lease that ran out) and rings if there are
any. :func:`prune` deletes what the retention window no longer keeps.
(:mod:`dispatcher.worker.sweeper` runs both on a timer.)
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, delete, exists, func, select
from sqlalchemy.orm import Session, sessionmaker

from dispatcher.config import Settings
from dispatcher.models import Attempt, Delivery, Event, IdempotencyKey, utcnow
from dispatcher.pipeline.claim import due
from dispatcher.pipeline.doorbell import Doorbell
from dispatcher.vocabulary import FINAL_STATUSES

DELIVERY_TABLE = cast(Table, Delivery.__table__)

log = logging.getLogger(__name__)


def sweep(
    sessions: sessionmaker[Session],
    settings: Settings,
    doorbell: Doorbell,
    *,
    now: datetime | None = None,
) -> int:
    """Count the due deliveries (at most ``settings.sweep_batch_limit``) and ring if there are
    any; return the count. Ringing while a ring is out costs nothing, but when the oldest of
    them has waited a whole ``sweep_interval`` the ring that is out is not doing its work (a
    drain died holding the flag, a message was lost): then it rings whatever the flag says, so
    that work flows again within a sweep interval, not the flag's lifetime."""
    now = now or utcnow()
    table = DELIVERY_TABLE
    waiting = (
        select(table.c.next_attempt_at).where(due(now)).limit(settings.sweep_batch_limit).subquery()
    )
    with sessions() as session:
        count, oldest = session.execute(
            select(func.count(), func.min(waiting.c.next_attempt_at)).select_from(waiting)
        ).one()
    if count:
        stale = oldest is not None and oldest <= now - timedelta(seconds=settings.sweep_interval)
        if stale:
            doorbell.send()
        else:
            doorbell.ring([])
    return int(count)


def prune_expired(sessions: sessionmaker[Session], settings: Settings) -> int:
    """One retention pass in its own session; logs what it deleted."""
    with sessions() as session:
        deleted = prune(session, settings)
    if deleted:
        log.info(
            "retention: deleted %d deliveries older than %s", deleted, settings.delivery_retention
        )
    return deleted


def prune(session: Session, settings: Settings, *, now: datetime | None = None) -> int:
    """Delete finished deliveries (succeeded, failed, skipped) created more than
    ``retention_seconds`` ago, with their attempts, then the events older than that which no
    delivery refers to, and the idempotency keys older than their window. A delivery still
    pending is kept, however old: pruning never loses one.

    Works in batches of ``retention_batch_size``, committing after each, so a large backlog
    never holds long locks. Returns the number of deliveries deleted."""
    cutoff = (now or utcnow()) - timedelta(seconds=settings.retention_seconds)
    deleted = 0
    while True:
        ids = session.scalars(
            select(Delivery.id)
            .where(Delivery.created_at < cutoff, Delivery.status.in_(FINAL_STATUSES))
            .limit(settings.retention_batch_size)
        ).all()
        if not ids:
            break
        # Attempts first, so the result does not depend on ON DELETE CASCADE being enforced.
        session.execute(delete(Attempt).where(Attempt.delivery_id.in_(ids)))
        session.execute(delete(Delivery).where(Delivery.id.in_(ids)))
        session.commit()
        deleted += len(ids)
    forgotten = (now or utcnow()) - timedelta(seconds=settings.idempotency_seconds)
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < forgotten))
    orphaned = ~exists().where(Delivery.event_id == Event.id)
    session.execute(
        delete(Event)
        .where(Event.created_at < cutoff, orphaned)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return deleted


__all__ = ["prune", "prune_expired", "sweep"]
