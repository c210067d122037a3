"""The ring flags and the broker bell."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from dispatcher.models import Delivery
from tests.conftest import empty_tables, free_port, settings_for
from tests.unit.pipeline_helpers import emit, notify


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


# -- when Redis or the broker is gone ----------------------------------------------------------


def test_an_unreachable_redis_flag_errs_on_the_side_of_ringing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from dispatcher.config import Settings
    from dispatcher.pipeline.doorbell import RedisRingFlag, ring_flag

    flag = ring_flag(Settings(broker_url=f"redis://127.0.0.1:{free_port()}/0"))
    assert isinstance(flag, RedisRingFlag)
    started = time.monotonic()
    assert flag.acquire() and flag.acquire()  # every producer rings rather than none
    assert time.monotonic() - started < 2  # and a producer is not held up by it
    flag.clear()  # logged, never raised into a drain
    assert "could not clear the ring flag" in caplog.text


def test_an_unreachable_broker_loses_nothing_and_the_next_ring_tries_again(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from dispatcher.pipeline.doorbell import BrokerDoorbell, LocalRingFlag
    from dispatcher.runtime import create_runtime
    from dispatcher.worker.bell import client_app, sender

    settings = settings_for(database_url, broker_url=f"redis://127.0.0.1:{free_port()}/0")
    doorbell = BrokerDoorbell(LocalRingFlag(), sender(client_app(settings)))
    runtime = create_runtime(settings, doorbell)
    try:
        notify(runtime)
        ids = emit(runtime)  # rings, and the broker is not there
        assert "broker unreachable" in caplog.text
        assert doorbell.flag.acquire()  # cleared: the next producer or sweep rings again
        with runtime.sessions() as session:
            statuses = session.scalars(select(Delivery.status).where(Delivery.id.in_(ids))).all()
        assert statuses == ["pending"]  # stored and due: the sweep rings when the broker is back
    finally:
        empty_tables(runtime)
        runtime.close()
