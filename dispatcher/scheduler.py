"""The sweep: the periodic job that makes the doorbell reliable.

Workers are only told about deliveries by the doorbell, and a ring can be lost (a broker
restart, a worker killed holding its batch, a retry whose time has come). :func:`sweep` finds
every delivery that is pending and due whose lease is empty or expired, gives it a short *ring
lease* (``settings.ring_lease_seconds``, so the next tick does not ring it again while its
message waits in the queue), clears any stale claim (the worker that held it lost it) and rings.
:func:`run_sweeper` repeats that every ``settings.sweep_interval`` seconds until stopped;
``dispatcher scheduler`` and the embedded server run it.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from dispatcher.deliveries import prune_expired
from dispatcher.models import Delivery, utcnow
from dispatcher.runtime import Runtime

DELIVERY_TABLE = cast(Table, Delivery.__table__)

log = logging.getLogger(__name__)


def sweep(runtime: Runtime, *, now: datetime | None = None) -> int:
    """Ring the due deliveries nobody holds (at most ``settings.sweep_batch_limit``, oldest
    due first); return how many were rung."""
    settings = runtime.settings
    now = now or utcnow()
    table = DELIVERY_TABLE
    due = (
        table.c.status == "pending",
        table.c.next_attempt_at <= now,
        or_(table.c.lease_until.is_(None), table.c.lease_until < now),
    )
    with runtime.sessions() as session, session.begin():
        query = (
            select(table.c.id)
            .where(*due)
            .order_by(table.c.next_attempt_at)
            .limit(settings.sweep_batch_limit)
        )
        if runtime.engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(session.scalars(query))
        if ids:
            session.execute(
                update(table)
                .where(table.c.id.in_(ids), *due)
                .values(
                    lease_until=now + timedelta(seconds=settings.ring_lease_seconds),
                    claim_token=None,
                )
            )
    if ids:
        runtime.doorbell.ring(ids)
    return len(ids)


def run_sweeper(runtime: Runtime, stop: threading.Event) -> None:
    """Sweep every ``settings.sweep_interval`` seconds until ``stop`` is set. A database
    error is logged and the next tick tries again: the sweep must outlive an outage.
    Every ``settings.retention_interval`` seconds it also prunes the delivery log."""
    next_prune = time.monotonic()
    while not stop.is_set():
        if time.monotonic() >= next_prune:
            next_prune = time.monotonic() + runtime.settings.retention_interval
            try:
                prune_expired(runtime.sessions, runtime.settings)
            except SQLAlchemyError as exc:
                log.warning("retention failed, retrying later: %s", type(exc).__name__)
        try:
            count = sweep(runtime)
        except SQLAlchemyError as exc:
            log.warning("sweep failed, retrying next tick: %s", type(exc).__name__)
            count = 0
        if count:
            log.debug("sweep rang %d deliveries", count)
        if count < runtime.settings.sweep_batch_limit:
            stop.wait(runtime.settings.sweep_interval)


__all__ = ["run_sweeper", "sweep"]
