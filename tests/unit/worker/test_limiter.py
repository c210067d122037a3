"""The rate limiters: GCRA spacing in this process on an injected clock, and in a private
redis-server shared by two limiters; failing open when Redis cannot be reached."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
import redis

from dispatcher.config import Settings
from dispatcher.ops.redis_client import connect
from dispatcher.worker.limiter import (
    KEY_PREFIX,
    PRUNE_AT,
    LocalRateLimiter,
    Pacer,
    RedisRateLimiter,
    limiter_for,
)
from tests.conftest import free_port
from tests.redisserver import RedisServer
from tests.unit.pipeline_helpers import make_job


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_local_bucket_lets_one_message_go_per_interval() -> None:
    clock = Clock()
    limiter = LocalRateLimiter(clock)
    assert limiter.acquire("slack:a", 2.0) == 0.0  # an idle bucket: at once
    assert limiter.acquire("slack:a", 2.0) == pytest.approx(0.5)  # nothing taken by asking
    clock.now += 0.2
    assert limiter.acquire("slack:a", 2.0) == pytest.approx(0.3)
    clock.now += 0.3
    assert limiter.acquire("slack:a", 2.0) == 0.0
    assert limiter.acquire("slack:a", 2.0) == pytest.approx(0.5)


def test_local_buckets_are_apart() -> None:
    limiter = LocalRateLimiter(Clock())
    assert limiter.acquire("slack:a", 1.0) == 0.0
    assert limiter.acquire("slack:b", 1.0) == 0.0
    assert limiter.acquire("webhook:a", 1.0) == 0.0
    assert limiter.acquire("slack:a", 1.0) == pytest.approx(1.0)


def test_a_bucket_idle_for_an_interval_does_not_save_up_a_burst() -> None:
    clock = Clock()
    limiter = LocalRateLimiter(clock)
    assert limiter.acquire("k", 10.0) == 0.0
    clock.now += 60.0
    assert limiter.acquire("k", 10.0) == 0.0
    assert limiter.acquire("k", 10.0) == pytest.approx(0.1)


def sends(
    limiter: LocalRateLimiter | RedisRateLimiter, clock: Clock, rate: float, n: int
) -> list[float]:
    """The times ``n`` messages of one bucket go when each caller waits as told."""
    sent: list[float] = []
    while len(sent) < n:
        wait = limiter.acquire("k", rate)
        if wait == 0.0:
            sent.append(clock.now)
        clock.now += wait
    return sent


def test_messages_go_exactly_one_interval_apart() -> None:
    clock = Clock()
    sent = sends(LocalRateLimiter(clock), clock, 4.0, 9)
    assert [b - a for a, b in pairwise(sent)] == pytest.approx([0.25] * 8)


def test_the_local_limiter_forgets_buckets_whose_time_has_passed() -> None:
    clock = Clock()
    limiter = LocalRateLimiter(clock)
    for n in range(PRUNE_AT - 1):
        limiter.acquire(f"k{n}", 1.0)
    clock.now += 2.0
    limiter.acquire("fresh", 1.0)
    assert len(limiter) == 1


# -- shared in Redis ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    try:
        server = RedisServer(free_port(), tmp_path_factory.mktemp("limiter-redis"))
    except FileNotFoundError:
        pytest.skip("redis-server not installed")
    server.start()
    yield server
    server.stop()


def redis_limiter(url: str) -> RedisRateLimiter:
    limiter = limiter_for(Settings(broker_url=url, rate_limit_timeout=0.2))
    assert isinstance(limiter, RedisRateLimiter)
    return limiter


def test_two_limiters_on_one_redis_share_a_bucket(redis_server: RedisServer) -> None:
    url = redis_server.url(1)
    first, second = redis_limiter(url), redis_limiter(url)
    try:
        assert first.acquire("slack:a", 1.0) == 0.0
        wait = second.acquire("slack:a", 1.0)
        assert 0.9 < wait <= 1.0  # the other's message counts
        assert second.acquire("slack:b", 1.0) == 0.0  # another bucket is free
        client = redis.Redis.from_url(url)
        ttl = client.pttl(KEY_PREFIX + "slack:a")
        client.close()
        assert 0 < ttl <= 1001  # the key goes once its time has passed
    finally:
        first.close()
        second.close()


def test_redis_spaces_messages_on_its_own_clock(redis_server: RedisServer) -> None:
    """Two limiters taking turns at 20/s: the messages go 50 ms apart, measured here."""
    limiters = [redis_limiter(redis_server.url(2)) for _ in range(2)]
    sent: list[float] = []
    try:
        turn = 0
        while len(sent) < 11:
            wait = limiters[turn % 2].acquire("webhook:x", 20.0)
            turn += 1
            if wait == 0.0:
                sent.append(time.monotonic())
            else:
                time.sleep(wait)
    finally:
        for limiter in limiters:
            limiter.close()
    gaps = [b - a for a, b in pairwise(sent)]
    assert all(gap >= 0.049 for gap in gaps), gaps
    assert sorted(gaps)[len(gaps) // 2] == pytest.approx(0.05, rel=0.2)


def test_an_unreachable_redis_fails_open_to_this_process(caplog: pytest.LogCaptureFixture) -> None:
    limiter = redis_limiter(f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "dispatcher.worker.limiter"):
        assert limiter.acquire("slack:a", 1.0) == 0.0
        assert 0.9 < limiter.acquire("slack:a", 1.0) <= 1.0  # paced here meanwhile
        assert limiter.acquire("slack:a", 1.0) > 0.9
    assert time.monotonic() - started < 1.0
    assert not limiter.shared
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Redis did not answer" in warnings[0].getMessage()
    limiter.close()


def test_redis_is_asked_again_after_the_cool_down(tmp_path: Path) -> None:
    port = free_port()
    server = RedisServer(port, tmp_path)
    clock = Clock()
    limiter = RedisRateLimiter(connect(server.url(), 0.2), retry_after=5.0, clock=clock)
    try:
        assert limiter.acquire("k", 1.0) == 0.0  # Redis is not there: local
        assert not limiter.shared
        server.start()
        clock.now += 4.9
        assert limiter.acquire("k", 100.0) == 0.0  # still local: its own bucket's time passed
        assert not limiter.shared
        clock.now += 0.2
        assert limiter.acquire("k", 1.0) == 0.0  # Redis again, where the bucket is fresh
        assert limiter.shared
        assert 0.9 < limiter.acquire("k", 1.0) <= 1.0
    finally:
        limiter.close()
        server.stop()


def test_a_broker_other_than_redis_or_none_paces_in_process() -> None:
    assert isinstance(limiter_for(Settings()), LocalRateLimiter)
    assert isinstance(
        limiter_for(Settings(broker_url="amqp://guest@localhost//")), LocalRateLimiter
    )


# -- the pool's pacer ----------------------------------------------------------------------------


def test_a_pacer_keeps_what_the_budget_can_send_within_a_lease() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    pacer = Pacer(Settings(http_timeout=1.0, lease_seconds=12), ["webhook"], LocalRateLimiter())
    job = make_job(
        lease_until=now + timedelta(seconds=12), config={"url": "http://h/", "rate_limit": 2}
    )
    limit = pacer.limit_of(job)
    assert limit is not None and limit.rate == 2.0
    # 10 s of the lease allow a send: 20 ahead at 2/s fit, 21 do not
    assert pacer.keeps(job, limit, 20, now)
    assert not pacer.keeps(job, limit, 21, now)
    assert pacer.keeps(
        job, limit, 0, now + timedelta(seconds=60)
    )  # a lane's first: the pool decides
    assert pacer.limit_of(replace(job, method="sms")) is None  # a method the pool cannot send


def test_a_pacer_asks_its_limiter_for_paced_jobs_only() -> None:
    clock = Clock()
    pacer = Pacer(Settings(), ["webhook"], LocalRateLimiter(clock))
    paced = make_job(config={"url": "http://h/", "rate_limit": 4})
    unpaced = make_job(config={"url": "http://h/"})
    assert pacer.wait(paced) == 0.0
    assert pacer.wait(paced) == pytest.approx(0.25)
    assert pacer.wait(unpaced) == pacer.wait(unpaced) == 0.0


def test_a_redis_that_drops_connections_costs_one_try_per_check() -> None:
    """A Redis that accepts and hangs up: one connection per check, no retries backing off."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def hang_up() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            connection.close()

    threading.Thread(target=hang_up, daemon=True).start()
    port = listener.getsockname()[1]
    limiter = RedisRateLimiter(connect(f"redis://127.0.0.1:{port}/0", 0.2), retry_after=0.0)
    try:
        started = time.monotonic()
        for n in range(3):
            assert limiter.acquire(f"k{n}", 1.0) == 0.0
        assert time.monotonic() - started < 0.5
        assert len(accepted) == 3
    finally:
        limiter.close()
        listener.close()
