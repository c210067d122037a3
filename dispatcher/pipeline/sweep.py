"""The sweep: the periodic job that makes the doorbell reliable.

Workers are only told about work by the doorbell, and a ring can be lost (a broker restart, a
worker killed while draining) or never sent (a retry whose time has come, a target that was
busy). :func:`sweep` looks for deliveries that are pending and due and that nobody holds (no
claim, or a claim whose lease expired) and rings if there are any.
:func:`run_sweeper` repeats that every ``settings.sweep_interval`` seconds until stopped;
``dispatcher scheduler`` and the embedded server run it.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import cast

from sqlalchemy import Table, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from dispatcher.models import Delivery, utcnow
from dispatcher.runtime import Runtime
from dispatcher.service.delivery_log import prune_expired

DELIVERY_TABLE = cast(Table, Delivery.__table__)

log = logging.getLogger(__name__)


def sweep(runtime: Runtime, *, now: datetime | None = None) -> int:
    """Count the due deliveries that nobody holds (at most ``settings.sweep_batch_limit``) and
    ring if there are any; return the count. Ringing while a ring is out costs nothing."""
    now = now or utcnow()
    table = DELIVERY_TABLE
    due = (
        select(table.c.id)
        .where(
            table.c.status == "pending",
            table.c.next_attempt_at <= now,
            or_(table.c.claim_token.is_(None), table.c.lease_until < now),
        )
        .limit(runtime.settings.sweep_batch_limit)
        .subquery()
    )
    with runtime.sessions() as session:
        count = session.scalar(select(func.count()).select_from(due)) or 0
    if count:
        runtime.doorbell.ring([])
    return count


def run_sweeper(runtime: Runtime, stop: threading.Event) -> None:
    """Sweep every ``settings.sweep_interval`` seconds until ``stop`` is set. A database
    error is logged and the next tick tries again: the sweep must outlive an outage.
    Every ``settings.retention_interval`` seconds it also prunes the delivery log."""
    next_prune = time.monotonic()
    log.info("scheduler started: sweeping every %g s", runtime.settings.sweep_interval)
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
