"""Claiming due deliveries, on SQLite and PostgreSQL: what is due, oldest first, never twice,
skipped when the notification is disabled, carrying everything an attempt needs."""

from __future__ import annotations

from datetime import timedelta

from dispatcher.models import Delivery, Notification, utcnow
from dispatcher.pipeline.claim import Job, claim, claim_due
from dispatcher.runtime import Runtime
from dispatcher.service import emit as producer
from dispatcher.service.notifications import queue_test
from tests.unit.pipeline_helpers import (
    FakeSender,
    attempts,
    delivery,
    emit,
    notify,
    run_once,
)


def test_live_claim_is_not_taken_twice(runtime: Runtime) -> None:
    notify(runtime)
    (did,) = emit(runtime)
    assert len(claim(runtime.sessions, [did], runtime.settings)) == 1
    assert claim(runtime.sessions, [did], runtime.settings) == []


def test_final_delivery_is_never_sent_again(runtime: Runtime, sender: FakeSender) -> None:
    notify(runtime)
    (did,) = emit(runtime)
    run_once(runtime, sender, [did])
    run_once(runtime, sender, [did])
    assert len(sender.sent) == 1
    assert len(attempts(runtime, did)) == 1


def test_event_delivery_of_disabled_notification_is_skipped_at_claim(
    runtime: Runtime, sender: FakeSender
) -> None:
    nid = notify(runtime)
    (did,) = emit(runtime)
    with runtime.sessions.begin() as session:
        session.get_one(Notification, nid).disabled_at = utcnow()
    assert claim(runtime.sessions, [did], runtime.settings) == []
    skipped = delivery(runtime, did)
    assert skipped.status == "skipped"
    assert skipped.finished_at is not None and skipped.claim_token is None
    assert sender.sent == []


def test_job_is_plain_data() -> None:
    assert Job.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_claim_due_takes_oldest_due_first_and_never_twice(runtime: Runtime) -> None:
    for n in range(5):
        notify(runtime, url=f"http://hook.example/{n}")
    ids = emit(runtime)
    first = claim_due(runtime.sessions, runtime.settings, 3)
    second = claim_due(runtime.sessions, runtime.settings, 3)
    assert len(first) == 3 and len(second) == 2
    assert sorted(j.delivery_id for j in first + second) == sorted(ids)
    assert claim_due(runtime.sessions, runtime.settings, 3) == []
    later = utcnow() + timedelta(seconds=runtime.settings.lease_seconds + 1)
    assert len(claim_due(runtime.sessions, runtime.settings, 10, now=later)) == 5


def test_claim_due_leaves_what_is_not_due_and_orders_by_due_time(runtime: Runtime) -> None:
    notify(runtime)
    (late,) = emit(runtime)
    (early,) = emit(runtime)
    (future,) = emit(runtime)
    now = utcnow()
    with runtime.sessions.begin() as session:
        session.get_one(Delivery, late).next_attempt_at = now - timedelta(seconds=1)
        session.get_one(Delivery, early).next_attempt_at = now - timedelta(seconds=5)
        session.get_one(Delivery, future).next_attempt_at = now + timedelta(seconds=60)
    first = claim_due(runtime.sessions, runtime.settings, 1, now=now)
    assert [job.delivery_id for job in first] == [early]
    rest = claim_due(runtime.sessions, runtime.settings, 10, now=now)
    assert [job.delivery_id for job in rest] == [late]
    assert claim_due(runtime.sessions, runtime.settings, 10, now=now) == []
    expired = now + timedelta(seconds=runtime.settings.lease_seconds + 1)
    again = claim_due(runtime.sessions, runtime.settings, 1, now=expired)
    assert [job.delivery_id for job in again] == [early]  # lease expired: oldest due first


def test_claimed_jobs_come_oldest_due_first(runtime: Runtime) -> None:
    """One batch, in due order whatever the ids (random UUIDs) or the order of the rows say:
    a paced endpoint gets its deliveries in that order."""
    notify(runtime)
    ids = [emit(runtime)[0] for _ in range(12)]
    now = utcnow()
    with runtime.sessions.begin() as session:
        for age, delivery_id in enumerate(ids):  # the last emitted is the oldest due
            session.get_one(Delivery, delivery_id).next_attempt_at = now - timedelta(seconds=age)
    due_order = list(reversed(ids))
    jobs = claim_due(runtime.sessions, runtime.settings, 50, now=now)
    assert [job.delivery_id for job in jobs] == due_order
    later = now + timedelta(seconds=runtime.settings.lease_seconds + 1)
    jobs = claim(runtime.sessions, ids, runtime.settings, now=later)
    assert [job.delivery_id for job in jobs] == due_order


def test_deliveries_due_at_once_come_in_the_order_they_were_made(runtime: Runtime) -> None:
    """Hand-backs and a fan-out can share a due time: then the older delivery goes first."""
    notify(runtime)
    ids = [emit(runtime)[0] for _ in range(12)]
    now = utcnow()
    with runtime.sessions.begin() as session:
        for age, delivery_id in enumerate(ids):  # the first emitted is the oldest
            row = session.get_one(Delivery, delivery_id)
            row.next_attempt_at = now
            row.created_at = now - timedelta(seconds=len(ids) - age)
    jobs = claim_due(runtime.sessions, runtime.settings, 50, now=now)
    assert [job.delivery_id for job in jobs] == ids
    later = now + timedelta(seconds=runtime.settings.lease_seconds + 1)
    jobs = claim(runtime.sessions, ids, runtime.settings, now=later)
    assert [job.delivery_id for job in jobs] == ids


def test_claim_due_carries_everything_a_send_needs(runtime: Runtime) -> None:
    nid = notify(runtime, title="Ops hook")
    performer = {"entity_name": "alice", "kind": "user"}
    result = producer.emit(
        runtime.sessions,
        runtime.settings,
        runtime.doorbell,
        "acme/web",
        "repo_push",
        {"updated_tags": ["v1"]},
        performer,
    )
    (job,) = claim_due(runtime.sessions, runtime.settings, 10)
    assert job.delivery_id == result.delivery_ids[0]
    assert (job.kind, job.attempt_number, job.notification_id) == ("event", 1, nid)
    assert (job.method, job.title, job.event_name) == ("webhook", "Ops hook", "repo_push")
    assert (job.namespace, job.repository) == ("acme", "web")
    assert job.config["url"] == "http://hook.example/a"
    assert job.data["updated_tags"] == ["v1"] and job.data["repository"] == "acme/web"
    assert job.performer == performer
    assert job.lease_until > utcnow()


def test_claim_due_skips_event_deliveries_of_disabled_notifications(
    runtime: Runtime,
) -> None:
    nid = notify(runtime)
    (did,) = emit(runtime)
    with runtime.sessions() as session:
        test_delivery = queue_test(
            session, session.get_one(Notification, nid), runtime.settings, runtime.doorbell
        )
    with runtime.sessions.begin() as session:
        session.get_one(Notification, nid).disabled_at = utcnow()
    jobs = claim_due(runtime.sessions, runtime.settings, 10)
    assert [job.delivery_id for job in jobs] == [test_delivery.id]  # tests still go out
    skipped = delivery(runtime, did)
    assert skipped.status == "skipped"
    assert skipped.finished_at is not None and skipped.claim_token is None
