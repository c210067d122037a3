"""The delivery state machine with a fake sender: claim, attempt, record, sweep, sender pool."""

from __future__ import annotations

import io
import json
import logging
import random
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dispatcher.models import Attempt, Delivery, Notification, utcnow
from dispatcher.ops.logs import configure_logging
from dispatcher.pipeline.claim import Job, Outcome, claim, claim_due, retry_delay
from dispatcher.pipeline.record import record
from dispatcher.pipeline.sweep import sweep
from dispatcher.runtime import Runtime
from dispatcher.service import emit as producer
from dispatcher.service.notifications import queue_test
from dispatcher.worker.pool import SenderPool
from tests.doubles import RecordingDoorbell
from tests.unit.pipeline_helpers import (
    FakeSender,
    add_notification,
    add_repository,
    attempt_now,
    make_runtime,
    migrated_sqlite,
    runtime_emptied_after,
)


@pytest.fixture
def db_url(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite(tmp_path, tmp_path_factory.getbasetemp())


@pytest.fixture
def runtime(database_url: str) -> Iterator[Runtime]:
    """A runtime on each backend: claims and outcomes have PostgreSQL statements of their own."""
    yield from runtime_emptied_after(database_url)


@pytest.fixture
def sender() -> FakeSender:
    return FakeSender()


def notify(runtime: Runtime, script: list[str] | None = None, **kwargs: Any) -> int:
    repo_id = _repo(runtime)
    config = {"url": kwargs.pop("url", "http://hook.example/a"), "script": script or ["ok"]}
    return add_notification(runtime, repo_id, config=config, **kwargs)


def _repo(runtime: Runtime) -> int:
    from dispatcher.service.notifications import find_repository

    with runtime.sessions() as session:
        found = find_repository(session, "acme", "web")
        if found is not None:
            return found.id
    return add_repository(runtime)


def emit(runtime: Runtime) -> list[str]:
    result = producer.emit(
        runtime.sessions, runtime.settings, runtime.doorbell, "acme/web", "repo_push", {}
    )
    return list(result.delivery_ids)


def run_once(runtime: Runtime, sender: FakeSender, ids: list[str], **kwargs: Any) -> list[Outcome]:
    """Claim, attempt and record ``ids`` synchronously."""
    jobs = claim(runtime.sessions, ids, runtime.settings, now=kwargs.get("now"))
    outcomes = [attempt_now(job, sender) for job in jobs]
    record(runtime.sessions, outcomes, runtime.settings, now=kwargs.get("now"))
    return outcomes


def delivery(runtime: Runtime, delivery_id: str) -> Delivery:
    with runtime.sessions() as session:
        return session.get_one(Delivery, delivery_id)


def notification(runtime: Runtime, notification_id: int) -> Notification:
    with runtime.sessions() as session:
        return session.get_one(Notification, notification_id)


def attempts(runtime: Runtime, delivery_id: str) -> list[Attempt]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.number)
            )
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
    assert row.last_error == "HTTP 503"
    # not due yet: a ring claims nothing
    assert claim(runtime.sessions, [did], runtime.settings) == []


def test_retry_delay_jitter_bounds_and_exhaustion(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(
        update={"retry_schedule": "10,0.25", "retry_jitter": 0.2}
    )
    rng = random.Random(7)
    samples = [retry_delay(1, settings, rng=rng) for _ in range(500)]
    assert all(s is not None and 8.0 <= s <= 12.0 for s in samples)
    assert max(s for s in samples if s) - min(s for s in samples if s) > 2.0  # it does vary
    assert 0.2 <= (retry_delay(2, settings, rng=rng) or 0) <= 0.3  # sub-second works
    assert retry_delay(3, settings, rng=rng) is None


def test_retry_after_is_honoured_and_capped(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(update={"retry_schedule": "1", "retry_after_max": 50})
    assert retry_delay(1, settings, retry_after=30) == 30
    assert retry_delay(1, settings, retry_after=500) == 50
    assert retry_delay(1, settings, retry_after=0.1) == 1


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
    assert (row.status, row.last_error) == ("failed", "HTTP 404")
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
    assert (row.status, row.last_error) == ("failed", "internal error")
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
    assert delivery(runtime, waiting).status == "skipped"
    assert delivery(runtime, test_delivery.id).status == "pending"  # tests still go out
    assert emit(runtime) == []  # new events skip it


def test_event_delivery_of_disabled_notification_is_skipped_at_claim(
    runtime: Runtime, sender: FakeSender
) -> None:
    nid = notify(runtime)
    (did,) = emit(runtime)
    with runtime.sessions.begin() as session:
        session.get_one(Notification, nid).disabled_at = utcnow()
    assert claim(runtime.sessions, [did], runtime.settings) == []
    assert delivery(runtime, did).status == "skipped"
    assert sender.sent == []


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


def test_final_delivery_is_never_sent_again(runtime: Runtime, sender: FakeSender) -> None:
    notify(runtime)
    (did,) = emit(runtime)
    run_once(runtime, sender, [did])
    run_once(runtime, sender, [did])
    assert len(sender.sent) == 1
    assert len(attempts(runtime, did)) == 1


def test_live_claim_is_not_taken_twice(runtime: Runtime) -> None:
    notify(runtime)
    (did,) = emit(runtime)
    assert len(claim(runtime.sessions, [did], runtime.settings)) == 1
    assert claim(runtime.sessions, [did], runtime.settings) == []


def test_stale_claim_changes_nothing(runtime: Runtime, sender: FakeSender) -> None:
    notify(runtime)
    (did,) = emit(runtime)
    (stale,) = claim(runtime.sessions, [did], runtime.settings)
    later = utcnow() + timedelta(seconds=runtime.settings.lease_seconds + 1)
    assert sweep(runtime, now=later) == 1  # the lease expired: the sweep rings for it
    (fresh,) = claim(runtime.sessions, [did], runtime.settings, now=later + timedelta(seconds=31))
    summary = record(runtime.sessions, [attempt_now(stale, sender)], runtime.settings)
    assert (summary.applied, summary.stale) == (0, 1)
    assert delivery(runtime, did).status == "pending" and attempts(runtime, did) == []
    record(runtime.sessions, [attempt_now(fresh, sender)], runtime.settings)
    assert delivery(runtime, did).status == "succeeded"


def test_success_after_failures_in_one_batch(runtime: Runtime, sender: FakeSender) -> None:
    ok = notify(runtime, ["ok"])
    ids = emit(runtime)
    bad_job_ids = []
    with runtime.sessions.begin() as session:
        session.get_one(Notification, ok).number_of_failures = 2
    jobs = claim(runtime.sessions, ids, runtime.settings)
    bad_job_ids = [j.delivery_id for j in jobs]
    outcomes = [attempt_now(job, sender) for job in jobs]
    record(runtime.sessions, outcomes, runtime.settings)
    assert notification(runtime, ok).number_of_failures == 0
    assert bad_job_ids == ids


# -- sweep ------------------------------------------------------------------------------------


def test_sweep_rings_while_due_work_waits(runtime: Runtime) -> None:
    notify(runtime)
    ids = emit(runtime)
    doorbell = runtime.doorbell
    assert isinstance(doorbell, RecordingDoorbell)
    before = doorbell.rings
    assert sweep(runtime) == 1
    assert doorbell.rings == before + 1
    claim(runtime.sessions, ids, runtime.settings)
    assert sweep(runtime) == 0  # claimed: nothing waits
    assert doorbell.rings == before + 1
    later = utcnow() + timedelta(seconds=runtime.settings.lease_seconds + 1)
    assert sweep(runtime, now=later) == 1  # the claim's lease ran out: due again


def test_sweep_leaves_claimed_and_future_deliveries(runtime: Runtime, sender: FakeSender) -> None:
    notify(runtime, ["transient"])
    (did,) = emit(runtime)
    (job,) = claim(runtime.sessions, [did], runtime.settings)
    assert sweep(runtime) == 0  # held by a live lease
    record(runtime.sessions, [attempt_now(job, sender)], runtime.settings)
    assert sweep(runtime) == 0  # retry not due yet
    assert sweep(runtime, now=utcnow() + timedelta(seconds=11)) == 1


# -- sender pool ------------------------------------------------------------------------------


def test_pool_sends_and_records_in_batches(runtime: Runtime, sender: FakeSender) -> None:
    for n in range(5):
        notify(runtime, url=f"http://hook.example/{n}")
    ids = emit(runtime)
    batches: list[int] = []

    def recorder(outcomes: Any) -> None:
        batches.append(len(outcomes))
        record(runtime.sessions, outcomes, runtime.settings)

    pool = SenderPool(runtime.sessions, runtime.settings, {"webhook": sender}, recorder=recorder)
    try:
        pool.submit(claim(runtime.sessions, ids, runtime.settings))
        assert pool.wait_idle(10)
    finally:
        pool.stop(10)
    assert all(delivery(runtime, d).status == "succeeded" for d in ids)
    assert sum(batches) == 5 and len(batches) < 5


def test_hung_target_holds_only_its_own_slots(db_url: str, sender: FakeSender) -> None:
    runtime = make_runtime(
        db_url,
        worker_send_concurrency=4,
        worker_per_host_concurrency=2,
        worker_per_host_queued=12,
        target_busy_delay=0.5,
    )
    try:
        for _ in range(16):
            notify(runtime, ["block"], url="http://hung.example/")
        for n in range(20):
            notify(runtime, url=f"http://fine.example/{n % 2}")
        ids = emit(runtime)
        pool = SenderPool(runtime.sessions, runtime.settings, {"webhook": sender})
        started = time.monotonic()
        pool.submit(claim(runtime.sessions, ids, runtime.settings))
        deadline = time.monotonic() + 5
        while len(sender.sent) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(sender.sent) == 20  # all of the fine target, while the hung one blocks
        assert time.monotonic() - started < 5
        sender.release.set()
        assert pool.wait_idle(10)
        pool.stop(10)
        with runtime.sessions() as session:
            rows = session.scalars(select(Delivery)).all()
        statuses = sorted(d.status for d in rows)
        # hung target: 12 fitted its queue and were sent once it answered; 4 were handed back
        # after its grace of target_busy_delay passed without an answer
        assert statuses.count("succeeded") == 32
        handed_back = [d for d in rows if d.status == "pending"]
        assert len(handed_back) == 4
        for row in handed_back:
            assert row.attempt_count == 0 and row.claim_token is None
            assert row.next_attempt_at >= row.created_at + timedelta(seconds=0.5)
    finally:
        sender.release.set()
        runtime.close()


def test_pool_blocks_submit_when_full(db_url: str, sender: FakeSender) -> None:
    runtime = make_runtime(db_url, worker_send_concurrency=1, worker_max_queued=2)
    try:
        for n in range(4):
            notify(runtime, ["block"], url=f"http://h{n}.example/")
        jobs = claim(runtime.sessions, emit(runtime), runtime.settings)
        pool = SenderPool(runtime.sessions, runtime.settings, {"webhook": sender})
        pool.submit(jobs[:3])  # one in flight, two waiting: full
        done = threading.Event()
        threading.Thread(target=lambda: (pool.submit(jobs[3:]), done.set()), daemon=True).start()
        assert not done.wait(0.3)
        sender.release.set()
        assert done.wait(5)
        assert pool.wait_idle(10)
        pool.stop(10)
    finally:
        sender.release.set()
        runtime.close()


def test_job_is_plain_data() -> None:
    assert Job.__dataclass_params__.frozen  # type: ignore[attr-defined]


# -- draining ---------------------------------------------------------------------------------


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
    assert delivery(runtime, did).status == "skipped"


def test_drain_sends_everything_due_then_clears_the_flag(db_url: str, sender: FakeSender) -> None:
    from dispatcher.pipeline.doorbell import LocalRingFlag
    from dispatcher.worker.context import WorkerContext

    runtime = make_runtime(db_url, worker_batch_size=2)
    context = WorkerContext(runtime, {"webhook": sender})
    helped: list[int] = []
    try:
        for n in range(5):
            notify(runtime, url=f"http://hook.example/{n}")
        ids = emit(runtime)
        flag = LocalRingFlag()
        assert flag.acquire()  # a producer rang
        assert context.drain(flag, ask_for_help=lambda: helped.append(1)) == 5
        assert flag.acquire()  # cleared: the next producer rings again
        assert context.pool.wait_idle(10)
        assert all(delivery(runtime, d).status == "succeeded" for d in ids)
        assert len(helped) == 2  # two full batches of 2 asked other workers to join
    finally:
        context.close(10)
        runtime.close()


def test_drain_sees_work_committed_while_the_flag_was_still_set(
    db_url: str, sender: FakeSender
) -> None:
    """A producer that found the flag set rang nobody: the drain must still claim its work."""
    from dispatcher.pipeline.doorbell import LocalRingFlag
    from dispatcher.worker.context import WorkerContext

    runtime = make_runtime(db_url)
    context = WorkerContext(runtime, {"webhook": sender})
    flag = LocalRingFlag()
    cleared: list[str] = []

    class LateProducer:
        """Commits one more delivery just before the worker clears the flag."""

        def acquire(self) -> bool:
            return flag.acquire()

        def clear(self) -> None:
            if not cleared:
                cleared.extend(emit(runtime))
                assert not flag.acquire()  # the producer saw the flag set: no ring
            flag.clear()

    try:
        notify(runtime)
        first = emit(runtime)
        assert flag.acquire()
        assert context.drain(LateProducer()) == 2
        assert context.pool.wait_idle(10)
        assert all(delivery(runtime, d).status == "succeeded" for d in first + cleared)
    finally:
        context.close(10)
        runtime.close()


def test_ring_flags() -> None:
    import fakeredis

    from dispatcher.pipeline.doorbell import BrokerDoorbell, LocalRingFlag, RedisRingFlag
    from dispatcher.worker.bell import sender as send_with

    local = LocalRingFlag()
    assert local.acquire() and not local.acquire()
    local.clear()
    assert local.acquire()

    shared = RedisRingFlag(fakeredis.FakeRedis(), "dispatcher:ring:test", ttl=0.05)
    assert shared.acquire() and not shared.acquire()
    shared.clear()
    assert shared.acquire()
    time.sleep(0.1)
    assert shared.acquire()  # a lost ring is made good when the flag expires

    class App:
        sent = 0

        def send_task(self, name: str) -> None:
            assert name == "dispatcher.drain"
            App.sent += 1

    doorbell = BrokerDoorbell(LocalRingFlag(), send_with(App()))
    doorbell.ring(["a"])
    doorbell.ring(["b"])
    assert App.sent == 1  # a ring is out: the second producer sends nothing
    doorbell.flag.clear()
    doorbell.ring(["c"])
    assert App.sent == 2


def test_submit_after_stop_sends_nothing_and_does_not_raise(
    runtime: Runtime, sender: FakeSender
) -> None:
    notify(runtime)
    ids = emit(runtime)
    pool = SenderPool(runtime.sessions, runtime.settings, {"webhook": sender})
    pool.stop(10)
    pool.submit(claim(runtime.sessions, ids, runtime.settings))
    assert sender.sent == []
    assert delivery(runtime, ids[0]).claim_token is not None  # the lease runs out, then a retry


def test_a_line_logged_while_sending_names_its_delivery(db_url: str, sender: FakeSender) -> None:
    """The sender of delivery D fails with a bug: the traceback line carries D's id."""
    runtime = make_runtime(db_url)
    notify(runtime, ["boom"])
    (did,) = emit(runtime)
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(runtime.settings.model_copy(update={"log_format": "json"}), stream)
    pool = SenderPool(runtime.sessions, runtime.settings, {"webhook": sender})
    try:
        pool.submit(claim(runtime.sessions, [did], runtime.settings))
        assert pool.wait_idle(10)
    finally:
        pool.stop(10)
        root.handlers[:] = handlers
        root.setLevel(level)
        runtime.close()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    internal = [line for line in lines if "internal error" in line["message"]]
    assert internal and all(line["delivery_id"] == did for line in internal), lines
    assert all(line.get("delivery_id") in (None, did) for line in lines)
