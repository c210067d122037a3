"""Recovery of failed and skipped deliveries, on SQLite and PostgreSQL: what a window selects,
once each, in batches, and the windows and times refused before anything is stored."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from dispatcher.errors import InvalidRequestError
from dispatcher.models import Delivery, Notification, utcnow
from dispatcher.pipeline.sweep import prune
from dispatcher.runtime import Runtime
from dispatcher.service import delivery_log
from dispatcher.service.delivery_log import Recovery
from tests.deliverylog import add_delivery, add_notification
from tests.doubles import RecordingDoorbell

NOW = utcnow()


def recover(
    runtime: Runtime,
    uuid: str,
    since: datetime,
    until: datetime | None = None,
    doorbell: RecordingDoorbell | None = None,
    **settings: object,
) -> Recovery:
    with runtime.sessions() as session:
        notification = session.scalars(select(Notification).filter_by(uuid=uuid)).one()
        return delivery_log.recover(
            session,
            notification,
            runtime.settings.model_copy(update=settings),
            doorbell or RecordingDoorbell(),
            since,
            until,
        )


def ended(runtime: Runtime, uuid: str, statuses: Sequence[str], minutes_ago: int = 30) -> list[str]:
    """A delivery per status, each ending a second after the one before; their ids."""
    with runtime.sessions.begin() as session:
        notification = session.scalars(select(Notification).filter_by(uuid=uuid)).one()
        start = NOW - timedelta(minutes=minutes_ago)
        return [
            add_delivery(
                session,
                notification,
                status=status,
                created_at=start,
                finished_at=start + timedelta(seconds=index),
            ).id
            for index, status in enumerate(statuses)
        ]


def hook(runtime: Runtime, **kwargs: object) -> str:
    with runtime.sessions.begin() as session:
        return add_notification(session, **kwargs).uuid  # type: ignore[arg-type]


def recoveries(runtime: Runtime) -> dict[str, Delivery]:
    """Every recovery, by the id of the delivery it recovers."""
    with runtime.sessions() as session:
        rows = session.scalars(select(Delivery).where(Delivery.recovers_id.is_not(None)))
        return {str(row.recovers_id): row for row in rows}


def test_failed_and_skipped_deliveries_of_the_window_are_sent_again_once(
    runtime: Runtime,
) -> None:
    uuid = hook(runtime, failures=3, disabled=True)  # recovery is how a disabled one catches up
    failed, skipped, _succeeded, _pending = ended(
        runtime, uuid, ["failed", "skipped", "succeeded", "pending"]
    )
    ended(runtime, uuid, ["failed"], minutes_ago=90)  # before the window
    with runtime.sessions.begin() as session:
        notification = session.scalars(select(Notification).filter_by(uuid=uuid)).one()
        ended_at = NOW - timedelta(minutes=10)
        add_delivery(session, notification, status="failed", kind="test", finished_at=ended_at)
    ended(runtime, hook(runtime), ["failed"])  # another notification's
    doorbell = RecordingDoorbell()

    result = recover(runtime, uuid, NOW - timedelta(hours=1), doorbell=doorbell)

    made = recoveries(runtime)
    assert list(made) == [failed, skipped]
    assert list(result.delivery_ids) == [made[failed].id, made[skipped].id]
    assert result.count == 2
    assert doorbell.rung == list(result.delivery_ids)
    with runtime.sessions() as session:
        for original_id, new in made.items():
            original = session.get_one(Delivery, original_id)
            assert (new.kind, new.status, new.attempt_count) == ("redelivery", "pending", 0)
            assert (new.event_id, new.notification_id) == (
                original.event_id,
                original.notification_id,
            )

    again = recover(runtime, uuid, NOW - timedelta(hours=1), doorbell=doorbell)

    assert again.count == 0 and list(again.delivery_ids) == []
    assert doorbell.rings == 1
    assert len(recoveries(runtime)) == 2


def test_since_is_in_the_window_and_until_is_not(runtime: Runtime) -> None:
    uuid = hook(runtime)
    first, second, third = ended(runtime, uuid, ["failed"] * 3)
    with runtime.sessions() as session:
        since = session.get_one(Delivery, first).finished_at
        until = session.get_one(Delivery, third).finished_at
    assert since is not None and until is not None

    result = recover(runtime, uuid, since, until)

    assert result.count == 2
    assert set(recoveries(runtime)) == {first, second}


def test_a_delivery_that_ends_after_the_call_began_is_left_for_a_later_one(
    runtime: Runtime,
) -> None:
    """So a call ends even when the recoveries it queues fail again while it runs."""
    uuid = hook(runtime)
    with runtime.sessions.begin() as session:
        notification = session.scalars(select(Notification).filter_by(uuid=uuid)).one()
        later = NOW + timedelta(minutes=5)
        add_delivery(session, notification, status="failed", finished_at=later)

    result = recover(runtime, uuid, NOW - timedelta(hours=1), NOW + timedelta(hours=1))

    assert result.count == 0


def test_a_large_recovery_commits_and_rings_batch_by_batch_oldest_first(
    runtime: Runtime,
) -> None:
    uuid = hook(runtime)
    originals = ended(runtime, uuid, ["failed", "skipped"] * 4 + ["failed"])
    doorbell = RecordingDoorbell()

    result = recover(
        runtime, uuid, NOW - timedelta(hours=1), doorbell=doorbell, recovery_batch_size=4
    )

    assert result.count == 9
    assert doorbell.rings == 3  # 4 + 4 + 1
    made = recoveries(runtime)
    assert [made[original].id for original in originals] == list(result.delivery_ids)


def test_two_calls_at_once_recover_each_delivery_once(runtime: Runtime) -> None:
    uuid = hook(runtime)
    originals = ended(runtime, uuid, ["failed"] * 40)
    start = threading.Barrier(2)
    results: list[Recovery] = []

    def call() -> None:
        start.wait()
        results.append(recover(runtime, uuid, NOW - timedelta(hours=1), recovery_batch_size=5))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(results) == 2
    assert sum(result.count for result in results) == 40
    assert set(recoveries(runtime)) == set(originals)
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 80


def test_a_recovered_delivery_can_still_be_pruned(runtime: Runtime) -> None:
    uuid = hook(runtime)
    (original,) = ended(runtime, uuid, ["failed"], minutes_ago=60)
    (recovery,) = recover(runtime, uuid, NOW - timedelta(hours=2)).delivery_ids
    with runtime.sessions() as session:
        pruned = prune(session, runtime.settings, now=NOW + timedelta(days=14, minutes=1))

    assert pruned == 1  # the recovery is pending, so it stays
    with runtime.sessions() as session:
        assert session.get(Delivery, original) is None
        assert session.get_one(Delivery, recovery).recovers_id is None


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        (NOW, NOW, "'since' (" + NOW.isoformat().replace("+00:00", "Z") + ") must be before"),
        (NOW, NOW - timedelta(seconds=1), "must be before 'until'"),
        (NOW - timedelta(days=14, seconds=1), NOW, "at most the retention window, 14d"),
        (NOW - timedelta(hours=1), NOW - timedelta(days=15), "must be before"),
    ],
    ids=["empty", "reversed", "longer-than-retention", "until-before-since"],
)
def test_a_bad_window_is_refused_and_stores_nothing(
    runtime: Runtime, since: datetime, until: datetime, message: str
) -> None:
    uuid = hook(runtime)
    ended(runtime, uuid, ["failed"])

    with pytest.raises(InvalidRequestError, match=re.escape(message)):
        recover(runtime, uuid, since, until)

    assert recoveries(runtime) == {}


def test_the_whole_retention_window_is_allowed(runtime: Runtime) -> None:
    uuid = hook(runtime)
    ended(runtime, uuid, ["failed"])
    assert recover(runtime, uuid, NOW - timedelta(days=14), NOW).count == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T08:00:00Z", datetime(2026, 12, 1, 8, tzinfo=UTC)),
        ("2026-12-01T08:00:00", datetime(2026, 12, 1, 8, tzinfo=UTC)),
        ("2026-12-01T10:00:00+02:00", datetime(2026, 12, 1, 8, tzinfo=UTC)),
        ("2026-12-01 10:00+0200", datetime(2026, 12, 1, 8, tzinfo=UTC)),
        ("2026-12-01T06:30-01:30", datetime(2026, 12, 1, 8, tzinfo=UTC)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T08:00:00.250000Z", datetime(2026, 12, 1, 8, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_times_are_iso_8601_and_utc_without_an_offset(text: str, expected: datetime) -> None:
    parsed = delivery_log.parse_time(text, "since")
    assert parsed == expected and parsed.tzinfo == UTC


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2h",
        "2026-13-01T00:00:00Z",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "2026-12-01T08:00:00Z\x00",
        "2026-12-01T08:00:00Z ",
        "2026-12-01T08",
        "\uff12\uff10\uff12\uff16-12-01",  # full-width digits
        "\ud800",
        "2026-12-01T08:00:00" + "0" * 100,
        "9" * 5000,
    ],
)
def test_anything_else_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidRequestError, match=r"^'until' must be an ISO-8601 time") as caught:
        delivery_log.parse_time(text, "until")
    assert len(caught.value.message) < 200


def test_an_original_pruned_between_read_and_insert_is_left_and_the_rest_recovered(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    uuid = hook(runtime)
    doomed, kept = ended(runtime, uuid, ["failed", "failed"])
    add_deliveries = delivery_log.outbox.add_deliveries
    pruned: list[str] = []

    def pruned_meanwhile(*args: Any, **kwargs: Any) -> list[str]:
        if not pruned:  # the retention prune takes one original in between, once
            with runtime.sessions.begin() as other:
                other.execute(delete(Delivery).where(Delivery.id == doomed))
            pruned.append(doomed)
        return add_deliveries(*args, **kwargs)

    monkeypatch.setattr(delivery_log.outbox, "add_deliveries", pruned_meanwhile)
    recovered = recover(runtime, uuid, NOW - timedelta(hours=1))
    assert list(recoveries(runtime)) == [kept]
    assert recovered.delivery_ids == [recoveries(runtime)[kept].id]
