"""Retention: ``deliveries.prune`` on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from dispatcher.models import Attempt, Delivery, Event, utcnow
from dispatcher.pipeline.sweep import run_sweeper
from dispatcher.runtime import Runtime, create_runtime
from dispatcher.service import delivery_log as deliveries
from tests.conftest import empty_tables, settings_for
from tests.deliverylog import add_delivery, add_notification


@pytest.fixture
def runtime(database_url: str) -> Iterator[Runtime]:
    runtime = create_runtime(
        settings_for(database_url, delivery_retention="14d", retention_batch_size=2)
    )
    yield runtime
    empty_tables(runtime)
    runtime.close()


def count(runtime: Runtime, model: type[object]) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_prune_deletes_old_finished_deliveries_their_attempts_and_orphaned_events(
    runtime: Runtime,
) -> None:
    now = utcnow()
    old = now - timedelta(days=15)
    with runtime.sessions.begin() as session:
        notification = add_notification(session)
        for status in ("succeeded", "failed", "skipped", "failed"):
            add_delivery(session, notification, created_at=old, status=status, attempts=2)
        kept = [add_delivery(session, notification, created_at=now - timedelta(days=13)).id]
        # A delivery still pending is never pruned, however old.
        kept.append(add_delivery(session, notification, created_at=old, status="pending").id)
        # An old event still referred to by a recent delivery (a redelivery) is kept.
        shared = add_delivery(session, notification, created_at=old)
        redelivered = Delivery(
            notification_id=notification.id,
            event_id=shared.event_id,
            kind="redelivery",
            status="pending",
            next_attempt_at=now,
            created_at=now,
        )
        session.add(redelivered)
        session.flush()
        kept.append(redelivered.id)
        # An old event that never had a delivery (no notification matched) goes too.
        session.add(
            Event(
                repository_id=notification.repository_id, name="repo_push", data={}, created_at=old
            )
        )

    with runtime.sessions() as session:
        assert deliveries.prune(session, runtime.settings, now=now) == 5

    with runtime.sessions() as session:
        assert sorted(session.scalars(select(Delivery.id)).all()) == sorted(kept)
        events = session.scalars(select(Event.id)).all()
        assert sorted(events) == sorted({session.get(Delivery, i).event_id for i in kept})  # type: ignore[union-attr]
    assert count(runtime, Attempt) == 2  # the recent delivery's and the pending one's


def test_prune_with_nothing_old_is_a_no_op(runtime: Runtime) -> None:
    with runtime.sessions.begin() as session:
        add_delivery(session, add_notification(session))
    with runtime.sessions() as session:
        assert deliveries.prune(session, runtime.settings) == 0
    assert count(runtime, Delivery) == 1
    assert count(runtime, Event) == 1


def test_the_sweeper_prunes_on_its_own(database_url: str) -> None:
    runtime = create_runtime(
        settings_for(database_url, delivery_retention="1d", sweep_interval=0.05)
    )
    with runtime.sessions.begin() as session:
        add_delivery(session, add_notification(session), created_at=utcnow() - timedelta(days=2))
    stop = threading.Event()
    thread = threading.Thread(target=run_sweeper, args=(runtime, stop), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while count(runtime, Delivery) + count(runtime, Event) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert count(runtime, Delivery) == 0
        assert count(runtime, Event) == 0
    finally:
        stop.set()
        thread.join(timeout=10)
        empty_tables(runtime)
        runtime.close()
