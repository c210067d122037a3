"""The sweeper on a timer: it prunes the delivery log on its own, one of many sweeps at a time
under the leader lease, and it outlives a database outage."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from dispatcher.models import Delivery, Event, utcnow
from dispatcher.runtime import Runtime, create_runtime
from dispatcher.worker.leader import leader_lease
from dispatcher.worker.sweeper import Sweeper, run_sweeper
from tests.conftest import empty_tables, settings_for
from tests.deliverylog import add_delivery, add_notification
from tests.doubles import RecordingDoorbell
from tests.tcpproxy import TCPProxy
from tests.unit.pipeline_helpers import emit, notify


def count(runtime: Runtime, model: type[object]) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_the_sweeper_prunes_on_its_own(database_url: str) -> None:
    runtime = create_runtime(
        settings_for(database_url, delivery_retention="1d", sweep_interval=0.05)
    )
    with runtime.sessions.begin() as session:
        add_delivery(session, add_notification(session), created_at=utcnow() - timedelta(days=2))
    stop = threading.Event()
    thread = threading.Thread(target=run_sweeper, args=(runtime, stop), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while count(runtime, Delivery) + count(runtime, Event) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert count(runtime, Delivery) == 0
        assert count(runtime, Event) == 0
    finally:
        stop.set()
        thread.join(timeout=10)
        empty_tables(runtime)
        runtime.close()


def rings_of(runtime: Runtime) -> int:
    doorbell = runtime.doorbell
    assert isinstance(doorbell, RecordingDoorbell)
    return doorbell.rings


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_of_many_sweepers_one_sweeps_and_another_takes_over(database_url: str) -> None:
    settings = settings_for(database_url, sweep_interval=0.05)
    runtimes = [create_runtime(settings, RecordingDoorbell()) for _ in range(3)]
    notify(runtimes[0])
    emit(runtimes[0])  # due work for every sweep to find
    before = [rings_of(runtime) for runtime in runtimes]
    sweepers = [
        Sweeper(runtime, leader_lease(runtime.engine, settings.worker_queue))
        for runtime in runtimes
    ]
    try:
        wait_for(lambda: sum(map(rings_of, runtimes)) > sum(before) + 5)
        sweeping = [i for i, runtime in enumerate(runtimes) if rings_of(runtime) > before[i]]
        assert len(sweeping) == 1  # exactly one sweeps at a time
        leader = sweeping[0]
        sweepers[leader].stop(timeout=5)  # it goes away (its lease with it)
        others = [i for i in range(3) if i != leader]
        counts = {i: rings_of(runtimes[i]) for i in others}
        wait_for(lambda: any(rings_of(runtimes[i]) > counts[i] for i in others))
    finally:
        for sweeper in sweepers:
            sweeper.stop(timeout=5)
        empty_tables(runtimes[0])
        for runtime in runtimes:
            runtime.close()


def test_the_sweeper_outlives_a_database_outage(
    proxied_postgres: tuple[str, TCPProxy], caplog: pytest.LogCaptureFixture
) -> None:
    url, proxy = proxied_postgres
    runtime = create_runtime(settings_for(url, sweep_interval=0.05), RecordingDoorbell())
    notify(runtime)
    emit(runtime)
    sweeper = Sweeper(runtime, leader_lease(runtime.engine, runtime.settings.worker_queue))
    try:
        base = rings_of(runtime)
        wait_for(lambda: rings_of(runtime) > base)
        proxy.stop()  # the database goes away, connections and all
        time.sleep(0.5)  # several ticks fail
        assert "leader lease lost" in caplog.text or "sweep failed" in caplog.text
        proxy.start()
        after_outage = rings_of(runtime)
        wait_for(lambda: rings_of(runtime) > after_outage)  # sweeping again, lease retaken
    finally:
        sweeper.stop(timeout=5)
        proxy.start()
        runtime.close()
