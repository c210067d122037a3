"""The outbox, on SQLite and PostgreSQL: every delivery is born pending and due, with the
ids it was given, and leaves with its notification."""

from __future__ import annotations

from sqlalchemy import func, select

from dispatcher.models import Attempt, Delivery, Event, utcnow
from dispatcher.pipeline import outbox
from dispatcher.runtime import Runtime
from dispatcher.vocabulary import DeliveryKind, DeliveryStatus
from tests.unit.pipeline_helpers import add_repository, notify


def test_an_event_and_its_deliveries_are_written_together(runtime: Runtime) -> None:
    repository = add_repository(runtime)
    first, second = notify(runtime), notify(runtime)
    now = utcnow()
    with runtime.sessions.begin() as session:
        event = outbox.new_event(repository, "repo_push", {"a": 1}, {"entity_name": "x"}, now)
        ids = outbox.add_event_with_deliveries(session, event, [first, second], DeliveryKind.TEST)
    with runtime.sessions() as session:
        stored = {row.id: row for row in session.scalars(select(Delivery))}
        assert set(stored) == set(ids)  # the ids it gave are the rows' ids
        assert [stored[i].notification_id for i in ids] == [first, second]
        for row in stored.values():
            assert (row.status, row.kind, row.attempt_count) == (
                DeliveryStatus.PENDING,
                DeliveryKind.TEST,
                0,
            )
            assert row.event_id == event["id"]
            assert row.next_attempt_at == row.created_at == now
            assert row.claim_token is None and row.lease_until is None
        stored_event = session.get_one(Event, event["id"])
        assert (stored_event.data, stored_event.performer) == ({"a": 1}, {"entity_name": "x"})


def test_an_event_nobody_listens_to_is_stored_alone(runtime: Runtime) -> None:
    repository = add_repository(runtime)
    with runtime.sessions.begin() as session:
        event = outbox.new_event(repository, "repo_push", {}, None, utcnow())
        assert outbox.add_event_with_deliveries(session, event, [], DeliveryKind.EVENT) == []
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 1
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0


def test_deliveries_of_stored_events_and_their_discarding(runtime: Runtime) -> None:
    repository = add_repository(runtime)
    keep, drop = notify(runtime), notify(runtime)
    with runtime.sessions.begin() as session:
        events = [
            outbox.add_event(session, outbox.new_event(repository, "repo_push", {}, None, utcnow()))
            for _ in range(2)
        ]
        ids = outbox.add_deliveries(
            session, [keep, drop], events, DeliveryKind.REDELIVERY, utcnow()
        )
        session.add(
            Attempt(delivery_id=ids[1], number=1, started_at=utcnow(), outcome="x", latency_ms=1)
        )
    with runtime.sessions() as session:
        rows = {row.id: row for row in session.scalars(select(Delivery))}
        assert [rows[i].event_id for i in ids] == events
    with runtime.sessions.begin() as session:
        outbox.discard_deliveries(session, [drop])
    with runtime.sessions() as session:
        assert list(session.scalars(select(Delivery.id))) == [ids[0]]
        assert session.scalar(select(func.count()).select_from(Attempt)) == 0


def test_a_delivery_is_recovered_at_most_once(runtime: Runtime) -> None:
    repository = add_repository(runtime)
    notification = notify(runtime)
    with runtime.sessions.begin() as session:
        events = [
            outbox.add_event(session, outbox.new_event(repository, "repo_push", {}, None, utcnow()))
            for _ in range(3)
        ]
        first, second, third = outbox.add_deliveries(
            session, [notification] * 3, events, DeliveryKind.EVENT, utcnow()
        )
    with runtime.sessions.begin() as session:
        recovered = outbox.add_deliveries(
            session,
            [notification] * 2,
            events[:2],
            DeliveryKind.REDELIVERY,
            utcnow(),
            recovers_ids=[first, second],
        )
    with runtime.sessions.begin() as session:
        # a second call that selected its deliveries before the first one committed
        again = outbox.add_deliveries(
            session,
            [notification] * 2,
            [events[1], events[2]],
            DeliveryKind.REDELIVERY,
            utcnow(),
            recovers_ids=[second, third],
        )

    assert len(recovered) == 2 and len(again) == 1
    with runtime.sessions() as session:
        rows = {row.id: row for row in session.scalars(select(Delivery))}
    assert [rows[i].recovers_id for i in [*recovered, *again]] == [first, second, third]
    assert [rows[i].event_id for i in [*recovered, *again]] == events
    assert {rows[i].status for i in again} == {DeliveryStatus.PENDING}
    assert len(rows) == 6
