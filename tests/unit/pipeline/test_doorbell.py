"""The ring flags and the broker bell."""

from __future__ import annotations

import time


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
