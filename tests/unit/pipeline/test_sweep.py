"""The sweep, on SQLite and PostgreSQL: it rings while due work waits, and only then; retention
prunes finished deliveries and the events no delivery refers to."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from dispatcher.models import Attempt, Delivery, Event, utcnow
from dispatcher.pipeline.claim import claim
from dispatcher.pipeline.record import record
from dispatcher.pipeline.sweep import prune, sweep
from dispatcher.runtime import Runtime, create_runtime
from tests.conftest import empty_tables, settings_for
from tests.deliverylog import add_delivery, add_notification
from tests.doubles import RecordingDoorbell
from tests.unit.pipeline_helpers import (
    FakeSender,
    attempt_now,
    emit,
    notify,
    sweep_now,
)


def test_sweep_rings_while_due_work_waits(runtime: Runtime) -> None:
    notify(runtime)
    ids = emit(runtime)
    doorbell = runtime.doorbell
    assert isinstance(doorbell, RecordingDoorbell)
    before = doorbell.rings
    assert sweep_now(runtime) == 1
    assert doorbell.rings == before + 1
    claim(runtime.sessions, ids, runtime.settings)
    assert sweep_now(runtime) == 0  # claimed: nothing waits
    assert doorbell.rings == before + 1
    later = utcnow() + timedelta(seconds=runtime.settings.lease_seconds + 1)
    assert sweep_now(runtime, later) == 1  # the claim's lease ran out: due again


def test_sweep_rings_past_the_flag_when_due_work_is_older_than_a_sweep(runtime: Runtime) -> None:
    """A ring that is out but does nothing (its drain died holding the flag) must not hold
    work back for the flag's lifetime: work due for a whole sweep interval is rung anyway."""
    notify(runtime)
    emit(runtime)
    doorbell = runtime.doorbell
    assert isinstance(doorbell, RecordingDoorbell)
    interval = runtime.settings.sweep_interval
    sweep_now(runtime, utcnow() + timedelta(seconds=interval / 2))
    assert doorbell.sent == 0  # freshly due: the flag decides
    sweep_now(runtime, utcnow() + timedelta(seconds=interval + 1))
    assert doorbell.sent == 1  # due for longer than a sweep: rung whatever the flag says


def test_sweep_leaves_claimed_and_future_deliveries(runtime: Runtime, sender: FakeSender) -> None:
    notify(runtime, ["transient"])
    (did,) = emit(runtime)
    (job,) = claim(runtime.sessions, [did], runtime.settings)
    assert sweep_now(runtime) == 0  # held by a live lease
    record(runtime.sessions, [attempt_now(job, sender)], runtime.settings)
    assert sweep_now(runtime) == 0  # retry not due yet
    assert (
        sweep(
            runtime.sessions,
            runtime.settings,
            runtime.doorbell,
            now=utcnow() + timedelta(seconds=11),
        )
        == 1
    )


# -- retention ---------------------------------------------------------------------------------


@pytest.fixture
def retaining(database_url: str) -> Iterator[Runtime]:
    """A runtime keeping 14 days of deliveries, pruning two at a time."""
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
    retaining: Runtime,
) -> None:
    runtime = retaining
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
        assert prune(session, runtime.settings, now=now) == 5

    with runtime.sessions() as session:
        assert sorted(session.scalars(select(Delivery.id)).all()) == sorted(kept)
        events = session.scalars(select(Event.id)).all()
        assert sorted(events) == sorted({session.get(Delivery, i).event_id for i in kept})  # type: ignore[union-attr]
    assert count(runtime, Attempt) == 2  # the recent delivery's and the pending one's


def test_prune_with_nothing_old_is_a_no_op(retaining: Runtime) -> None:
    runtime = retaining
    with runtime.sessions.begin() as session:
        add_delivery(session, add_notification(session))
    with runtime.sessions() as session:
        assert prune(session, runtime.settings) == 0
    assert count(runtime, Delivery) == 1
    assert count(runtime, Event) == 1
