"""The sender pool's pacing of rate-limited deliveries: spaced and in order, without an
attempt for the wait, holding nothing else up, handed back when their turn is beyond their
lease, and shared by two pools on one limiter."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import select

from dispatcher.models import Delivery, utcnow
from dispatcher.pipeline.claim import claim
from dispatcher.runtime import Runtime
from dispatcher.senders import http
from dispatcher.senders.base import Receipt
from dispatcher.worker.limiter import LocalRateLimiter
from dispatcher.worker.pool import SenderPool
from tests.unit.pipeline_helpers import (
    FakeSender,
    _repo,
    add_notification,
    delivery,
    emit,
    make_runtime,
)

PACED = "http://paced.example/hook"
OTHER = "http://paced.example/other"  # the same host, another endpoint: not paced


@dataclass(frozen=True)
class Sent:
    delivery_id: str
    url: str
    at: float


class TimedSender(FakeSender):
    """A FakeSender that notes when each message went, and where."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[Sent] = []

    def target_key(self, config: dict[str, Any]) -> str:
        return http.target_key(str(config.get("url", "")))  # the host, as the real senders

    async def send(self, message: dict[str, Any]) -> Receipt:
        receipt = await super().send(message)
        with self._lock:
            self.times.append(Sent(message["id"], message["config"]["url"], time.monotonic()))
        return receipt

    def to(self, url: str) -> list[Sent]:
        with self._lock:
            return [sent for sent in self.times if sent.url == url]


def notify_at(runtime: Runtime, url: str, **config: Any) -> int:
    return add_notification(runtime, _repo(runtime), config={"url": url, **config})


def sent_ids(sender: TimedSender, url: str) -> list[str]:
    return [sent.delivery_id for sent in sender.to(url)]


def add_notification_slack(runtime: Runtime) -> int:
    from dispatcher.models import Notification

    with runtime.sessions.begin() as session:
        row = Notification(
            repository_id=_repo(runtime),
            event="repo_push",
            method="slack",
            config={"url": "https://hooks.slack.com/services/T0/B0/X"},
            event_config={},
            number_of_failures=0,
        )
        session.add(row)
        session.flush()
        return row.id


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def test_a_paced_endpoint_goes_at_its_rate_in_order_and_holds_nothing_else(
    db_url: str,
) -> None:
    runtime = make_runtime(db_url, worker_per_host_concurrency=4, worker_send_concurrency=8)
    sender = TimedSender()
    pool = SenderPool(runtime.sessions, runtime.settings, {"webhook": sender})
    try:
        notify_at(runtime, PACED, rate_limit=20)
        notify_at(runtime, OTHER)
        ids = [delivery_id for _ in range(8) for delivery_id in emit(runtime)]
        jobs = claim(runtime.sessions, ids, runtime.settings)
        pool.submit(jobs)
        assert pool.wait_idle(10)
    finally:
        pool.stop(10)
    paced, other = sender.to(PACED), sender.to(OTHER)
    assert len(paced) == len(other) == 8
    gaps = [b.at - a.at for a, b in pairwise(paced)]
    assert min(gaps) >= 0.049, gaps
    assert statistics.median(gaps) < 0.065, gaps
    # in the order they were claimed
    assert sent_ids(sender, PACED) == [
        job.delivery_id for job in jobs if job.config["url"] == PACED
    ]
    # the other endpoint on the same host was not held behind the paced one
    assert other[-1].at < paced[2].at
    rows = [delivery(runtime, d) for d in ids]
    assert all(row.status == "succeeded" and row.attempt_count == 1 for row in rows)
    runtime.close()


def test_what_the_budget_cannot_send_within_a_lease_is_handed_back_at_once(
    db_url: str,
) -> None:
    """4/s with 0.8 s of usable lease: four are kept, the rest go back to pending at once,
    due when their turn comes, with no attempt counted."""
    runtime = make_runtime(db_url, http_timeout=0.2, lease_seconds=2.0, target_busy_delay=0.1)
    sender = TimedSender()
    pool = SenderPool(runtime.sessions, runtime.settings, {"webhook": sender})
    try:
        notify_at(runtime, PACED, rate_limit=4)
        ids = [emit(runtime)[0] for _ in range(10)]
        submitted = utcnow()
        pool.submit(claim(runtime.sessions, ids, runtime.settings))

        def handed_back() -> list[Delivery]:
            with runtime.sessions() as session:
                rows = session.scalars(select(Delivery).where(Delivery.id.in_(ids))).all()
            return [row for row in rows if row.status == "pending" and row.claim_token is None]

        started = time.monotonic()
        wait_for(lambda: len(handed_back()) >= 6)
        assert time.monotonic() - started < 0.2  # not after the kept ones' turns
        assert pool.wait_idle(10)
    finally:
        pool.stop(10)
    assert 3 <= len(sender.to(PACED)) <= 4
    back = handed_back()
    assert len(back) + len(sender.to(PACED)) == 10
    for row in back:
        assert row.status == "pending" and row.attempt_count == 0
        assert row.next_attempt_at >= submitted + timedelta(seconds=0.7)
    # each at its own turn, in the order they were emitted, spread a quarter of a second apart
    # (give or take the moment each was recorded): they come back one by one, not all at once
    due = [row.next_attempt_at for row in sorted(back, key=lambda row: ids.index(row.id))]
    assert all(earlier < later for earlier, later in pairwise(due)), due
    assert (due[-1] - due[0]).total_seconds() >= 0.25 * (len(due) - 2), due
    runtime.close()


def test_stopping_hands_back_the_jobs_of_a_held_lane(db_url: str) -> None:
    runtime = make_runtime(db_url)
    sender = TimedSender()
    pool = SenderPool(runtime.sessions, runtime.settings, {"slack": sender})
    try:
        add_notification_slack(runtime)
        ids = [emit(runtime)[0] for _ in range(4)]
        pool.submit(claim(runtime.sessions, ids, runtime.settings))
        wait_for(lambda: len(sender.times) == 1)  # then Slack's 1/s holds the rest
    finally:
        started = time.monotonic()
        pool.stop(10)
    assert time.monotonic() - started < 0.5
    assert len(sender.times) == 1
    rows = [delivery(runtime, d) for d in ids if d != sender.times[0].delivery_id]
    assert len(rows) == 3
    assert all(r.claim_token is None and r.attempt_count == 0 for r in rows)
    runtime.close()


def test_two_pools_on_one_limiter_share_the_budget(db_url: str) -> None:
    """Two workers' pools, one bucket: together they keep the rate."""
    runtime = make_runtime(db_url)
    limiter = LocalRateLimiter()
    sender = TimedSender()
    pools = [
        SenderPool(runtime.sessions, runtime.settings, {"webhook": sender}, limiter=limiter)
        for _ in range(2)
    ]
    try:
        notify_at(runtime, PACED, rate_limit=25)
        ids = [emit(runtime)[0] for _ in range(10)]
        jobs = claim(runtime.sessions, ids, runtime.settings)
        pools[0].submit(jobs[::2])
        pools[1].submit(jobs[1::2])
        assert all(pool.wait_idle(10) for pool in pools)
    finally:
        for pool in pools:
            pool.stop(10)
    times = sorted(sent.at for sent in sender.to(PACED))
    assert len(times) == 10
    assert min(b - a for a, b in pairwise(times)) >= 0.039
    runtime.close()


def test_a_paced_endpoint_asking_to_retry_after_a_while_is_obeyed(db_url: str) -> None:
    runtime = make_runtime(db_url, retry_after_max=3600)
    sender = TimedSender()
    pool = SenderPool(runtime.sessions, runtime.settings, {"webhook": sender})
    try:
        notify_at(runtime, PACED, rate_limit=10, script=["transient:30"])
        (did,) = emit(runtime)
        before = utcnow()
        pool.submit(claim(runtime.sessions, [did], runtime.settings))
        assert pool.wait_idle(10)
    finally:
        pool.stop(10)
    row = delivery(runtime, did)
    assert row.status == "pending" and row.attempt_count == 1
    assert row.next_attempt_at >= before + timedelta(seconds=29)
    runtime.close()


def test_a_job_whose_turn_comes_after_its_lease_is_handed_back_until_then(
    db_url: str,
) -> None:
    """Another worker took the bucket's slot: the next is 10 s away, beyond the lease."""
    from dispatcher.senders.registry import rate_limit

    runtime = make_runtime(db_url, http_timeout=0.5, lease_seconds=3.0)
    limiter = LocalRateLimiter()
    sender = TimedSender()
    pool = SenderPool(runtime.sessions, runtime.settings, {"webhook": sender}, limiter=limiter)
    try:
        notify_at(runtime, PACED, rate_limit=0.1)
        (did,) = emit(runtime)
        (job,) = claim(runtime.sessions, [did], runtime.settings)
        limit = rate_limit("webhook", job.config, runtime.settings)
        assert limit is not None and limiter.acquire(limit.bucket, limit.rate) == 0.0
        before = utcnow()
        pool.submit([job])
        assert pool.wait_idle(2)
    finally:
        pool.stop(10)
    assert sender.times == []
    row = delivery(runtime, did)
    assert row.status == "pending" and row.attempt_count == 0 and row.claim_token is None
    assert row.next_attempt_at >= before + timedelta(seconds=9)
    runtime.close()
