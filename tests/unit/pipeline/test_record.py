"""Recording outcomes, on SQLite and PostgreSQL: attempts, retries in the database, the failure
counter, disabling, and claims that went stale."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from dispatcher.models import Notification, utcnow
from dispatcher.pipeline.claim import claim, claim_due
from dispatcher.pipeline.record import record
from dispatcher.runtime import Runtime
from dispatcher.service.notifications import queue_test
from tests.doubles import RecordingDoorbell
from tests.unit.pipeline_helpers import (
    FakeSender,
    attempt_now,
    attempts,
    delivery,
    emit,
    notification,
    notify,
    run_once,
    sweep_now,
)


def test_success_records_attempt_and_clears_counter(runtime: Runtime, sender: FakeSender) -> None:
    nid = notify(runtime)
    with runtime.sessions.begin() as session:
        session.get_one(Notification, nid).number_of_failures = 2
    (did,) = emit(runtime)
    run_once(runtime, sender, [did])
    row = delivery(runtime, did)
    assert (row.status, row.attempt_count, row.claim_token, row.lease_until) == (
        "succeeded",
        1,
        None,
        None,
    )
    assert row.finished_at is not None
    (only,) = attempts(runtime, did)
    assert (only.outcome, only.status_code, only.response_excerpt) == ("succeeded", 200, "ok")
    assert notification(runtime, nid).number_of_failures == 0
    assert len(sender.sent) == 1 and sender.sent[0]["id"] == did


def test_transient_schedules_retry_in_database(runtime: Runtime, sender: FakeSender) -> None:
    notify(runtime, ["transient"])
    (did,) = emit(runtime)
    before = utcnow()
    run_once(runtime, sender, [did])
    row = delivery(runtime, did)
    assert (row.status, row.attempt_count, row.claim_token, row.lease_until) == (
        "pending",
        1,
        None,
        None,
    )
    assert (
        before + timedelta(seconds=9.9) <= row.next_attempt_at <= utcnow() + timedelta(seconds=10.1)
    )
    assert attempts(runtime, did)[-1].error == "HTTP 503"
    # not due yet: a ring claims nothing
    assert claim(runtime.sessions, [did], runtime.settings) == []


def test_retry_after_reaches_next_attempt_at(runtime: Runtime, sender: FakeSender) -> None:
    notify(runtime, ["transient:120"])
    (did,) = emit(runtime)
    now = utcnow()
    run_once(runtime, sender, [did], now=now)
    assert delivery(runtime, did).next_attempt_at == now + timedelta(seconds=120)


def test_permanent_fails_at_once_and_counts(runtime: Runtime, sender: FakeSender) -> None:
    nid = notify(runtime, ["permanent"])
    (did,) = emit(runtime)
    run_once(runtime, sender, [did])
    row = delivery(runtime, did)
    assert (row.status, attempts(runtime, did)[-1].error) == ("failed", "HTTP 404")
    assert attempts(runtime, did)[0].response_excerpt == "nope"
    assert notification(runtime, nid).number_of_failures == 1


def test_exhausted_retries_fail_and_count_once(runtime: Runtime, sender: FakeSender) -> None:
    nid = notify(runtime, ["transient"])
    (did,) = emit(runtime)
    now = utcnow()
    for step in range(3):  # schedule "10,60": three attempts in all
        run_once(runtime, sender, [did], now=now + timedelta(seconds=100 * step))
    row = delivery(runtime, did)
    assert (row.status, row.attempt_count) == ("failed", 3)
    assert [a.number for a in attempts(runtime, did)] == [1, 2, 3]
    assert notification(runtime, nid).number_of_failures == 1


def test_internal_error_fails_without_charging(runtime: Runtime, sender: FakeSender) -> None:
    nid = notify(runtime, ["boom"])
    (did,) = emit(runtime)
    run_once(runtime, sender, [did])
    row = delivery(runtime, did)
    assert (row.status, attempts(runtime, did)[-1].error) == ("failed", "internal error")
    assert notification(runtime, nid).number_of_failures == 0


def test_counter_reaches_max_disables_and_skips_pending(
    runtime: Runtime, sender: FakeSender
) -> None:
    nid = notify(runtime, ["permanent"])
    first, second, third, waiting = (emit(runtime)[0] for _ in range(4))
    with runtime.sessions() as session:
        test_delivery = queue_test(
            session, session.get_one(Notification, nid), runtime.settings, runtime.doorbell
        )
    for count, did in enumerate((first, second, third), start=1):
        run_once(runtime, sender, [did])
        assert notification(runtime, nid).number_of_failures == count
    assert notification(runtime, nid).disabled_at is not None
    skipped = delivery(runtime, waiting)
    assert skipped.status == "skipped"
    assert skipped.finished_at is not None and skipped.claim_token is None
    assert delivery(runtime, test_delivery.id).status == "pending"  # tests still go out
    assert emit(runtime) == []  # new events skip it


def test_test_delivery_is_sent_while_disabled_and_does_not_re_enable(
    runtime: Runtime, sender: FakeSender
) -> None:
    nid = notify(runtime, disabled=True)
    with runtime.sessions() as session:
        test_delivery = queue_test(
            session, session.get_one(Notification, nid), runtime.settings, runtime.doorbell
        )
    run_once(runtime, sender, [test_delivery.id])
    assert delivery(runtime, test_delivery.id).status == "succeeded"
    after = notification(runtime, nid)
    assert after.disabled_at is not None and after.number_of_failures == 3


def test_stale_claim_changes_nothing(runtime: Runtime, sender: FakeSender) -> None:
    notify(runtime)
    (did,) = emit(runtime)
    (stale,) = claim(runtime.sessions, [did], runtime.settings)
    later = utcnow() + timedelta(seconds=runtime.settings.lease_seconds + 1)
    assert sweep_now(runtime, later) == 1  # the lease expired: the sweep rings for it
    (fresh,) = claim(runtime.sessions, [did], runtime.settings, now=later + timedelta(seconds=31))
    summary = record(runtime.sessions, [attempt_now(stale, sender)], runtime.settings)
    assert (summary.applied, summary.stale) == (0, 1)
    assert delivery(runtime, did).status == "pending" and attempts(runtime, did) == []
    record(runtime.sessions, [attempt_now(fresh, sender)], runtime.settings)
    assert delivery(runtime, did).status == "succeeded"


def test_a_drain_whose_lease_expired_cannot_overwrite_the_one_that_took_over(
    runtime: Runtime, sender: FakeSender
) -> None:
    """As the last test, through claim_due: what a draining worker calls (on PostgreSQL one
    statement of its own). Each claim stamps its own token."""
    notify(runtime, ["permanent"])
    (did,) = emit(runtime)
    (stale,) = claim_due(runtime.sessions, runtime.settings, 10)
    later = utcnow() + timedelta(seconds=runtime.settings.lease_seconds + 1)
    (fresh,) = claim_due(runtime.sessions, runtime.settings, 10, now=later)
    assert fresh.delivery_id == did and fresh.claim_token != stale.claim_token
    ok = replace(fresh, config={**fresh.config, "script": ["ok"]})
    record(runtime.sessions, [attempt_now(ok, sender)], runtime.settings)
    summary = record(runtime.sessions, [attempt_now(stale, sender)], runtime.settings)
    assert (summary.applied, summary.stale) == (0, 1)
    assert delivery(runtime, did).status == "succeeded"
    assert [a.outcome for a in attempts(runtime, did)] == ["succeeded"]


@pytest.mark.parametrize(
    ("script", "disabled", "before", "after", "still_disabled"),
    [
        (["permanent", "ok"], False, 1, 0, False),
        (["ok", "permanent"], False, 2, 1, False),
        (["permanent", "ok"], True, 3, 4, True),  # disabled: a success does not reset
        (["ok", "permanent"], True, 3, 4, True),
    ],
)
def test_one_batch_moves_the_counter_in_outcome_order(
    runtime: Runtime,
    sender: FakeSender,
    script: list[str],
    disabled: bool,
    before: int,
    after: int,
    still_disabled: bool,
) -> None:
    """Two deliveries of one notification recorded in one batch: the first fails (or
    succeeds), the second succeeds (or fails); the counter ends as if each was recorded alone."""
    nid = notify(runtime, ["ok"])
    with runtime.sessions.begin() as session:
        row = session.get_one(Notification, nid)
        row.number_of_failures = before
        row.disabled_at = utcnow() if disabled else None
    with runtime.sessions() as session:
        # test deliveries: sent even while the notification is disabled
        first, second = (
            queue_test(
                session, session.get_one(Notification, nid), runtime.settings, RecordingDoorbell()
            ).id
            for _ in range(2)
        )
    claimed = claim(runtime.sessions, [first, second], runtime.settings)
    jobs = {job.delivery_id: job for job in claimed}
    assert set(jobs) == {first, second}
    outcomes = []
    for delivery_id, step in zip((first, second), script, strict=True):
        job = jobs[delivery_id]
        job = replace(job, config={**job.config, "script": [step]})
        outcomes.append(attempt_now(job, sender))
    record(runtime.sessions, outcomes, runtime.settings.model_copy(update={"max_failures": 3}))
    row = notification(runtime, nid)
    assert row.number_of_failures == after
    assert (row.disabled_at is not None) is still_disabled
