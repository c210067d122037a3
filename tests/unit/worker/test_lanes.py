"""The per-target lanes of a sender pool, pure: no database, no threads, an injected clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dispatcher.pipeline.claim import Job
from dispatcher.worker.lanes import Lanes
from tests.unit.pipeline_helpers import make_job

BASE = make_job()


def job(name: str) -> Job:
    return replace(BASE, delivery_id=name)


def drain(lanes: Lanes) -> list[tuple[str, str]]:
    """Start every job the lanes give now: (target, delivery id) in the order given."""
    started = []
    while (taken := lanes.next()) is not None:
        key, item = taken
        lanes.begin(key)
        started.append((key, item.delivery_id))
    return started


def test_targets_take_turns_within_their_slots() -> None:
    lanes = Lanes(per_target_concurrency=2, per_target_queued=10, busy_delay=1.0)
    for name in ("a1", "a2", "a3"):
        assert lanes.add("a", job(name), now=0.0)
    assert lanes.add("b", job("b1"), now=0.0)
    assert drain(lanes) == [("a", "a1"), ("b", "b1"), ("a", "a2")]  # a3 waits for a slot of a
    assert (lanes.queued, lanes.busy) == (1, 3)
    lanes.finish("a", now=0.5)
    assert drain(lanes) == [("a", "a3")]
    assert (lanes.queued, lanes.busy) == (0, 3)


def test_a_full_lane_refuses_more() -> None:
    lanes = Lanes(per_target_concurrency=1, per_target_queued=2, busy_delay=1.0)
    assert lanes.add("a", job("1"), now=0.0) and lanes.add("a", job("2"), now=0.0)
    assert lanes.is_full("a") and not lanes.is_full("b")
    assert not lanes.add("a", job("3"), now=0.0)
    assert lanes.queued == 2


@pytest.mark.parametrize(
    ("last_answer", "now", "stuck"),
    [(None, 0.5, False), (None, 1.0, True), (2.0, 2.9, False), (2.0, 3.0, True)],
)
def test_a_full_lane_is_stuck_when_its_target_has_not_answered_lately(
    last_answer: float | None, now: float, stuck: bool
) -> None:
    lanes = Lanes(per_target_concurrency=1, per_target_queued=1, busy_delay=1.0)
    lanes.add("a", job("1"), now=0.0)
    drain(lanes)  # 1 in flight
    lanes.add("a", job("2"), now=0.0)  # full
    if last_answer is not None:
        lanes.add("a", job("x"), now=0.0)  # refused: the lane is full
        lanes.finish("a", now=last_answer)
        drain(lanes)
        lanes.add("a", job("3"), now=last_answer)
    assert lanes.is_full("a")
    assert lanes.is_stuck("a", now) is stuck


def test_a_lane_that_is_not_full_is_never_stuck() -> None:
    lanes = Lanes(per_target_concurrency=1, per_target_queued=5, busy_delay=1.0)
    lanes.add("a", job("1"), now=0.0)
    assert not lanes.is_stuck("a", now=100.0)
    assert not lanes.is_stuck("never-seen", now=100.0)


def test_idle_lanes_are_forgotten() -> None:
    lanes = Lanes(per_target_concurrency=4, per_target_queued=5, busy_delay=1.0)
    for host in range(100):
        lanes.add(f"host-{host}", job(str(host)), now=0.0)
    started = drain(lanes)
    assert len(lanes) == 100
    for key, _ in started:
        lanes.finish(key, now=1.0)
    assert len(lanes) == 0
    assert (lanes.queued, lanes.busy) == (0, 0)


def test_a_job_dropped_instead_of_sent_frees_its_place() -> None:
    lanes = Lanes(per_target_concurrency=1, per_target_queued=5, busy_delay=1.0)
    lanes.add("a", job("1"), now=0.0)
    lanes.add("a", job("2"), now=0.0)
    key, first = lanes.next() or ("", BASE)
    lanes.drop(key)  # handed back: not in flight, the next one may start
    assert first.delivery_id == "1" and lanes.busy == 0
    assert drain(lanes) == [("a", "2")]
    lanes.finish("a", now=0.1)
    assert len(lanes) == 0
