"""Delivery keeps flowing with any one process dead: workers without a scheduler, a scheduler
killed mid-run, a worker told to stop with a backlog, and a run through every fault at once."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from dispatcher.worker.leader import leader_lease
from tests.integration.conftest import (
    Pipeline,
    Receiver,
    new_pipeline,
    running_redis,
    wait_until,
)
from tests.tcpproxy import TCPProxy

pytestmark = pytest.mark.integration


def kill(process_group_leader: int) -> None:
    os.killpg(process_group_leader, signal.SIGKILL)


def held_by_another(database_url: str, queue: str = "dispatcher") -> bool:
    """Whether some other process holds the sweepers' leader lease."""
    engine = create_engine(database_url)
    lease = leader_lease(engine, queue)
    try:
        return not lease.hold()
    finally:
        lease.release()
        engine.dispose()


def test_workers_alone_deliver_everything_and_make_every_retry(
    make_pipeline: Callable[..., Pipeline], receiver: Receiver
) -> None:
    # Small per-target queues: most of the burst is handed back and must come back by itself.
    pipeline = make_pipeline(worker_per_host_queued="5", worker_per_host_concurrency="2")
    count = 40
    for n in range(count):
        pipeline.notification("webhook", {"url": receiver.url(f"/{n}")})
    receiver.fail_first = True  # every delivery needs its retry
    pipeline.start("worker")
    pipeline.start("worker")  # and no scheduler anywhere

    assert pipeline.emit().deliveries == count
    wait_until(lambda: pipeline.statuses() == ["succeeded"] * count, timeout=40)
    per_path = Counter(request.path for request in receiver.requests)
    assert sorted(per_path) == sorted(f"/{n}" for n in range(count))
    assert min(per_path.values()) >= 2  # a 503, then the retry


def test_a_killed_scheduler_leaves_its_sweep_to_the_workers(
    make_pipeline: Callable[..., Pipeline], receiver: Receiver
) -> None:
    # Retries come due a second after the first attempts: after the scheduler is gone.
    pipeline = make_pipeline(retry_schedule="1,1")
    count = 25
    for n in range(count):
        pipeline.notification("webhook", {"url": receiver.url(f"/{n}")})
    receiver.fail_first = True
    scheduler = pipeline.start("scheduler")
    wait_until(lambda: held_by_another(pipeline.database_url))  # the scheduler sweeps
    pipeline.start("worker")
    pipeline.start("worker")

    assert pipeline.emit().deliveries == count
    receiver.wait_for(count)  # every first attempt made (and failed)
    kill(scheduler.pid)
    scheduler.wait(5)
    wait_until(lambda: pipeline.statuses() == ["succeeded"] * count, timeout=30)


def test_sigterm_with_a_backlog_exits_promptly_and_loses_nothing(
    make_pipeline: Callable[..., Pipeline], receiver: Receiver
) -> None:
    pipeline = make_pipeline(
        http_timeout="2",
        worker_per_host_concurrency="8",
        drain_seconds="60",  # only the stop itself may end the drain early
    )
    for n in range(20):
        pipeline.notification("webhook", {"url": receiver.url(f"/{n}")})
    receiver.delay = 0.2
    worker = pipeline.start("worker")
    for _ in range(60):
        pipeline.emit()  # 1,200 due deliveries
    receiver.wait_for(8)  # sending, with most of the backlog still due

    worker.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    worker.wait(15)
    took = time.monotonic() - stopped
    assert took < 2 + 5, f"took {took:.1f} s to stop"  # HTTP_TIMEOUT plus a few seconds
    assert len(receiver.requests) < 1200

    receiver.delay = 0.0
    pipeline.start("worker")
    wait_until(lambda: pipeline.statuses() == ["succeeded"] * 1200, timeout=40)


def test_every_fault_in_one_run_loses_no_delivery(
    proxied_postgres: tuple[str, TCPProxy], receiver: Receiver, tmp_path: Path
) -> None:
    """About 2,000 deliveries through two workers and a scheduler, on PostgreSQL through a
    proxy, while a worker is SIGKILLed, Redis is killed and restarted empty, the database is
    cut for a few seconds and the scheduler is killed: every delivery id arrives."""
    url, proxy = proxied_postgres
    direct = url.replace(f":{proxy.port}/", ":5432/")
    logs = tmp_path / "processes.log"
    with running_redis(tmp_path) as redis_server:
        pipeline = new_pipeline(
            url,
            redis_server.url(),
            producer_database_url=direct,
            lease_seconds="4",
            http_timeout="2",
            sweep_interval="0.5",
        )
        try:
            for n in range(20):
                pipeline.notification("webhook", {"url": receiver.url(f"/{n}")})
            receiver.delay = 0.01
            scheduler = pipeline.start("scheduler", log=logs)
            first = pipeline.start("worker", log=logs)
            pipeline.start("worker", log=logs)
            expected: set[str] = set()

            def emit_batch(events: int = 25) -> None:
                for _ in range(events):
                    expected.update(pipeline.emit().delivery_ids)  # 20 deliveries each

            emit_batch()
            receiver.wait_for(100)
            kill(first.pid)  # mid-run: claimed, some sent, some not
            pipeline.start("worker", log=logs)
            emit_batch()

            redis_server.kill()  # messages and the ring flag are gone
            emit_batch()  # stored; their rings find no broker
            redis_server.start()
            emit_batch()

            proxy.stop()  # the workers' and the scheduler's database goes away
            time.sleep(3)
            proxy.start()

            kill(scheduler.pid)
            emit_batch()

            def arrived() -> set[str]:
                with receiver.lock:
                    return {request.headers["webhook-id"] for request in receiver.requests}

            try:
                wait_until(lambda: expected <= arrived(), timeout=45)
            except AssertionError:
                missing = len(expected - arrived())
                raise AssertionError(
                    f"{missing} of {len(expected)} never arrived; statuses: "
                    f"{Counter(pipeline.statuses())}\n{logs.read_text()[-3000:]}"
                ) from None
            assert len(expected) == 2500
        finally:
            pipeline.stop_all()
            pipeline.runtime.close()
