"""A worker's drain: every due delivery into the pool, and the ring flag cleared before the last
claim."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import select

from dispatcher.models import Delivery
from tests.unit.pipeline_helpers import (
    FakeSender,
    delivery,
    emit,
    make_runtime,
    notify,
)


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


def test_a_drain_stops_claiming_at_once_when_the_worker_stops(
    db_url: str, sender: FakeSender
) -> None:
    """SIGTERM in the middle of a backlog: the drain claims no further batch, what waits in
    the pool goes back to pending, and the flag is cleared for another worker."""
    from dispatcher.pipeline.doorbell import LocalRingFlag
    from dispatcher.worker.context import WorkerContext

    runtime = make_runtime(db_url, worker_batch_size=10, worker_send_concurrency=1)
    context = WorkerContext(runtime, {"webhook": sender})
    flag = LocalRingFlag()
    flag.acquire()
    helped: list[int] = []
    try:
        notify(runtime, ["block"])
        for _ in range(50):
            emit(runtime)
        original = context.pool.submit

        def submit_then_stop(jobs: list[Any]) -> None:
            original(jobs)
            context.begin_stop()  # the signal arrives while the first batch is queued

        context.pool.submit = submit_then_stop  # type: ignore[method-assign]
        started = time.monotonic()
        assert context.drain(flag, ask_for_help=lambda: helped.append(1)) == 10
        assert time.monotonic() - started < 2
        assert flag.acquire()  # cleared
        assert helped  # another worker is rung for the rest
    finally:
        sender.release.set()
        context.close(10)
    with runtime.sessions() as session:
        statuses = [row.status for row in session.scalars(select(Delivery))]
    runtime.close()
    assert statuses.count("pending") >= 40  # claimed or not, nothing lost, nothing sent twice
    assert statuses.count("succeeded") <= 10


def test_a_drain_hands_over_after_its_time(db_url: str, sender: FakeSender) -> None:
    """A drain claims for at most drain_seconds, then rings for a successor and returns."""
    from dispatcher.pipeline.doorbell import LocalRingFlag
    from dispatcher.worker.context import WorkerContext

    runtime = make_runtime(db_url, worker_batch_size=2, drain_seconds=0.001)
    context = WorkerContext(runtime, {"webhook": sender})
    helped: list[int] = []
    try:
        for n in range(10):
            notify(runtime, url=f"http://hook.example/{n}")
        emit(runtime)
        flag = LocalRingFlag()
        flag.acquire()
        assert context.drain(flag, ask_for_help=lambda: helped.append(1)) == 2
        assert helped == [1]
        assert not flag.acquire()  # the ring is still out: the successor continues
    finally:
        context.close(10)
        runtime.close()


def test_a_drain_whose_database_fails_clears_the_flag(
    proxied_postgres: Any, sender: FakeSender
) -> None:
    from dispatcher.pipeline.doorbell import LocalRingFlag
    from dispatcher.worker.context import WorkerContext

    url, proxy = proxied_postgres
    runtime = make_runtime(url)
    context = WorkerContext(runtime, {"webhook": sender})
    try:
        notify(runtime)
        emit(runtime)
        proxy.stop()
        flag = LocalRingFlag()
        flag.acquire()
        assert context.drain(flag) == 0
        assert flag.acquire()  # not left set for RING_LEASE_SECONDS
        proxy.start()
        flag.clear()
        assert context.drain(flag) == 1  # and the work is found once the database is back
    finally:
        proxy.start()
        context.close(10)
        runtime.close()


def test_a_worker_whose_database_is_gone_still_stops_in_time(
    proxied_postgres: Any, sender: FakeSender
) -> None:
    """SIGTERM while the database is away: the outcomes cannot be written, and the worker
    exits anyway within HTTP_TIMEOUT plus the margin, leaving them to their leases."""
    from dispatcher.pipeline.doorbell import LocalRingFlag
    from dispatcher.worker.context import STOP_MARGIN, WorkerContext

    url, proxy = proxied_postgres
    runtime = make_runtime(url, http_timeout=1, lease_seconds=30)
    context = WorkerContext(runtime, {"webhook": sender})
    try:
        for n in range(5):
            notify(runtime, ["block"], url=f"http://hook.example/{n}")
        emit(runtime)
        assert context.drain(LocalRingFlag()) == 5  # all five in flight
        proxy.stop()  # the database goes while they are
        sender.release.set()  # they finish, and their outcomes cannot be written
        closing = threading.Thread(target=context.close, daemon=True)  # no timeout given
        closing.start()
        closing.join(1 + STOP_MARGIN + 1)  # HTTP_TIMEOUT + the margin, and a second to spare
        assert not closing.is_alive(), "still stopping"
    finally:
        proxy.start()
        runtime.close()
