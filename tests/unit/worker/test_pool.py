"""The sender pool: sends on an event loop, per-target slots, backpressure, batched records
and stop."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from dispatcher.models import Delivery
from dispatcher.ops.logs import configure_logging
from dispatcher.pipeline.claim import claim
from dispatcher.pipeline.record import record
from dispatcher.runtime import Runtime
from dispatcher.worker.pool import SenderPool
from tests.unit.pipeline_helpers import (
    FakeSender,
    delivery,
    emit,
    make_runtime,
    notify,
)


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
        target_stuck_after=0.5,
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
        # hung target: 2 in flight and 12 in its lane were sent once it answered; 2 were handed
        # back once its sends had waited target_stuck_after without an answer
        assert statuses.count("succeeded") == 34
        handed_back = [d for d in rows if d.status == "pending"]
        assert len(handed_back) == 2
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


class FlakyRecorder:
    """Records through ``record`` once ``up`` is set; until then the database is away."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.up = threading.Event()
        self.failures = 0
        self.written: list[str] = []

    def __call__(self, outcomes: Any) -> None:
        if not self.up.is_set():
            self.failures += 1
            raise OperationalError("INSERT …", {}, ConnectionRefusedError("database away"))
        record(self.runtime.sessions, outcomes, self.runtime.settings)
        self.written.extend(o.job.delivery_id for o in outcomes)


def test_outcomes_are_kept_while_the_database_is_away_and_no_new_send_starts(
    db_url: str, sender: FakeSender
) -> None:
    runtime = make_runtime(db_url, worker_send_concurrency=1, worker_per_host_concurrency=1)
    recorder = FlakyRecorder(runtime)
    pool = SenderPool(runtime.sessions, runtime.settings, {"webhook": sender}, recorder=recorder)
    try:
        notify(runtime)
        first = emit(runtime)
        pool.submit(claim(runtime.sessions, first, runtime.settings))
        deadline = time.monotonic() + 5
        while recorder.failures < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert recorder.failures >= 2 and len(sender.sent) == 1  # sent, not recorded
        later = [emit(runtime)[0] for _ in range(3)]
        pool.submit(claim(runtime.sessions, later, runtime.settings))
        time.sleep(0.3)
        assert len(sender.sent) == 1  # paused: nothing new goes out while outcomes wait
        recorder.up.set()
        assert pool.wait_idle(10)
    finally:
        pool.stop(10)
    assert sorted(recorder.written) == sorted(first + later)  # each written once
    assert len(sender.sent) == 4  # and each sent once
    assert all(delivery(runtime, d).status == "succeeded" for d in first + later)
    runtime.close()


def test_the_kept_outcomes_are_bounded(db_url: str, sender: FakeSender) -> None:
    """Beyond record_backlog_max the oldest outcomes are dropped: their deliveries keep their
    claim until its lease runs out, then are sent again (at least once)."""
    runtime = make_runtime(
        db_url,
        record_backlog_max=2,
        record_interval=0.3,  # all five outcomes in the first batch
        worker_send_concurrency=5,
        worker_per_host_concurrency=5,
    )
    recorder = FlakyRecorder(runtime)
    pool = SenderPool(runtime.sessions, runtime.settings, {"webhook": sender}, recorder=recorder)
    try:
        for n in range(5):
            notify(runtime, url=f"http://hook.example/{n}")
        ids = emit(runtime)
        pool.submit(claim(runtime.sessions, ids, runtime.settings))
        deadline = time.monotonic() + 5
        while not recorder.failures and time.monotonic() < deadline:
            time.sleep(0.01)
        recorder.up.set()
        assert pool.wait_idle(10)
    finally:
        pool.stop(10)
    assert len(sender.sent) == 5 and len(recorder.written) == 2
    kept = [delivery(runtime, d) for d in ids if d not in recorder.written]
    assert all(row.status == "pending" and row.claim_token is not None for row in kept)
    runtime.close()


def test_work_handed_back_rings_when_it_is_due(db_url: str, sender: FakeSender) -> None:
    """A stuck target's jobs go back to pending for target_busy_delay; the pool rings when they
    are due again, whether or not a sweep runs."""
    runtime = make_runtime(
        db_url,
        worker_per_host_concurrency=1,
        worker_per_host_queued=1,
        target_busy_delay=0.3,
        target_stuck_after=0.1,
    )
    rings: list[float] = []
    pool = SenderPool(
        runtime.sessions,
        runtime.settings,
        {"webhook": sender},
        wake=lambda: rings.append(time.monotonic()),
    )
    try:
        for _ in range(4):
            notify(runtime, ["block"], url="http://hung.example/")
        ids = emit(runtime)
        started = time.monotonic()
        pool.submit(claim(runtime.sessions, ids, runtime.settings))  # 1 sent, 1 waits, 2 back
        deadline = time.monotonic() + 5
        while not rings and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(rings) == 1  # one ring for both
        assert rings[0] - started >= 0.3
        with runtime.sessions() as session:
            back = [row for row in session.scalars(select(Delivery)) if row.claim_token is None]
        assert len(back) == 2 and all(row.attempt_count == 0 for row in back)
    finally:
        sender.release.set()
        pool.stop(10)
        runtime.close()


def test_a_batch_that_queued_failure_notices_rings_for_them(
    runtime: Runtime, sender: FakeSender
) -> None:
    notify(runtime, ["permanent"])
    notify(runtime, event="notification_failing", url="http://notices.example/")
    rings: list[float] = []
    pool = SenderPool(
        runtime.sessions,
        runtime.settings,
        {"webhook": sender},
        wake=lambda: rings.append(time.monotonic()),
    )
    try:
        pool.submit(claim(runtime.sessions, emit(runtime), runtime.settings))
        assert pool.wait_idle(10)
        deadline = time.monotonic() + 5  # the ring goes out on an executor thread
        while not rings and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        pool.stop(10)
    with runtime.sessions() as session:
        notices = session.scalars(select(Delivery.status).where(Delivery.kind == "event")).all()
    assert sorted(notices) == ["failed", "pending"]  # the hook's delivery and its notice
    assert len(rings) == 1
