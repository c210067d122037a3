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
