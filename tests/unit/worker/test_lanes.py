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


def start_all(lanes: Lanes, now: float = 0.0) -> list[tuple[str, str, float]]:
    """Start every job the lanes give now: (target, delivery id, started) in order."""
    started = []
    while (taken := lanes.next()) is not None:
        key, item = taken
        started.append((key, item.delivery_id, lanes.begin(key, now)))
    return started


def test_targets_take_turns_within_their_slots() -> None:
    lanes = Lanes(per_target_concurrency=2, per_target_queued=10, stuck_after=5.0)
    for name in ("a1", "a2", "a3"):
        assert lanes.add("a", job(name))
    assert lanes.add("b", job("b1"))
    started = start_all(lanes)
    assert [(key, name) for key, name, _ in started] == [("a", "a1"), ("b", "b1"), ("a", "a2")]
    assert (lanes.queued, lanes.busy) == (1, 3)  # a3 waits for a slot of a
    lanes.finish("a", started[0][2], now=0.5)
    assert [(key, name) for key, name, _ in start_all(lanes, 0.5)] == [("a", "a3")]
    assert (lanes.queued, lanes.busy) == (0, 3)


def test_a_full_lane_refuses_more() -> None:
    lanes = Lanes(per_target_concurrency=1, per_target_queued=2, stuck_after=5.0)
    assert lanes.add("a", job("1")) and lanes.add("a", job("2"))
    assert lanes.is_full("a") and not lanes.is_full("b")
    assert not lanes.add("a", job("3"))
    assert lanes.queued == 2


def full_lane_with_a_send_in_flight(started_at: float) -> Lanes:
    lanes = Lanes(per_target_concurrency=1, per_target_queued=1, stuck_after=5.0)
    lanes.add("a", job("1"))
    start_all(lanes, started_at)
    lanes.add("a", job("2"))
    assert lanes.is_full("a")
    return lanes


@pytest.mark.parametrize(("now", "stuck"), [(104.9, False), (105.0, True), (200.0, True)])
def test_a_full_lane_is_stuck_when_a_send_waits_that_long_for_an_answer(
    now: float, stuck: bool
) -> None:
    assert full_lane_with_a_send_in_flight(started_at=100.0).is_stuck("a", now) is stuck


def test_an_answer_since_the_oldest_send_started_is_evidence_of_life() -> None:
    lanes = Lanes(per_target_concurrency=2, per_target_queued=1, stuck_after=5.0)
    lanes.add("a", job("1"))
    ((_, _, first),) = start_all(lanes, 100.0)
    lanes.add("a", job("2"))
    ((_, _, second),) = start_all(lanes, 101.0)
    lanes.add("a", job("3"))  # waits: both slots are taken
    assert lanes.is_full("a")
    assert lanes.is_stuck("a", 105.0)  # the oldest send waits 5 s, nothing answered
    lanes.finish("a", second, now=103.0)  # the later send answered
    start_all(lanes, 103.0)
    lanes.add("a", job("4"))
    assert lanes.is_full("a")
    assert not lanes.is_stuck("a", 107.9)  # 4.9 s since the last answer
    assert lanes.is_stuck("a", 108.0)
    lanes.finish("a", first, now=108.0)
    assert not lanes.is_stuck("a", 108.0)


def test_an_idle_target_that_gets_a_burst_is_not_stuck() -> None:
    """A target last heard of long ago: its lane fills before the first answer comes."""
    lanes = Lanes(per_target_concurrency=1, per_target_queued=3, stuck_after=5.0)
    lanes.add("a", job("old"))
    ((key, _, started),) = start_all(lanes, 0.0)
    lanes.finish(key, started, now=0.1)  # idle from here
    for name in ("1", "2", "3"):
        lanes.add("a", job(name))
    start_all(lanes, 20.0)  # the burst, 20 s later: one in flight
    lanes.add("a", job("4"))
    assert lanes.is_full("a")
    assert not lanes.is_stuck("a", 20.5)
    assert lanes.is_stuck("a", 25.0)  # that send has waited 5 s without an answer


def test_a_lane_that_is_not_full_or_never_seen_is_never_stuck() -> None:
    lanes = Lanes(per_target_concurrency=1, per_target_queued=5, stuck_after=5.0)
    lanes.add("a", job("1"))
    start_all(lanes, 0.0)
    assert not lanes.is_stuck("a", now=100.0)
    assert not lanes.is_stuck("never-seen", now=100.0)


def test_idle_lanes_are_forgotten() -> None:
    lanes = Lanes(per_target_concurrency=4, per_target_queued=5, stuck_after=5.0)
    for host in range(100):
        lanes.add(f"host-{host}", job(str(host)))
    started = start_all(lanes)
    assert len(lanes) == 100
    for key, _, begun in started:
        lanes.finish(key, begun, now=1.0)
    assert len(lanes) == 0
    assert (lanes.queued, lanes.busy) == (0, 0)


def test_a_job_dropped_instead_of_sent_frees_its_place() -> None:
    lanes = Lanes(per_target_concurrency=1, per_target_queued=5, stuck_after=5.0)
    lanes.add("a", job("1"))
    lanes.add("a", job("2"))
    key, first = lanes.next() or ("", BASE)
    lanes.drop(key)  # handed back: not in flight, the next one may start
    assert first.delivery_id == "1" and lanes.busy == 0
    ((_, name, begun),) = start_all(lanes)
    assert name == "2"
    lanes.finish("a", begun, now=0.1)
    assert len(lanes) == 0


# -- held lanes (a rate limit says wait) -------------------------------------------------------


def test_a_held_lane_keeps_its_job_first_and_takes_no_turn_until_released() -> None:
    lanes = Lanes(per_target_concurrency=4, per_target_queued=10, stuck_after=5.0)
    for name in ("a1", "a2"):
        lanes.add("a", job(name))
    lanes.add("b", job("b1"))
    key, first = lanes.next() or ("", BASE)
    assert (key, first.delivery_id) == ("a", "a1")
    lanes.hold("a", first)
    assert lanes.is_held("a") and not lanes.is_held("b")
    assert (lanes.queued, lanes.busy, lanes.waiting("a")) == (3, 0, 2)
    lanes.add("a", job("a3"))  # more work does not offer a held lane
    assert [(k, name) for k, name, _ in start_all(lanes)] == [("b", "b1")]
    lanes.release("a")
    assert not lanes.is_held("a")
    assert [name for _, name, _ in start_all(lanes)] == ["a1", "a2", "a3"]  # in order


def test_an_answer_from_a_held_lanes_target_does_not_offer_it() -> None:
    lanes = Lanes(per_target_concurrency=2, per_target_queued=10, stuck_after=5.0)
    lanes.add("a", job("1"))
    lanes.add("a", job("2"))
    key, _ = lanes.next() or ("", BASE)
    begun = lanes.begin(key, 0.0)
    key, second = lanes.next() or ("", BASE)
    lanes.hold(key, second)
    lanes.finish("a", begun, now=0.5)  # the first send ends while the second waits
    assert lanes.next() is None
    assert len(lanes) == 1  # a held lane with work is remembered
    lanes.release("a")
    assert [name for _, name, _ in start_all(lanes)] == ["2"]


def test_release_all_offers_every_held_lane_and_release_of_the_unknown_is_harmless() -> None:
    lanes = Lanes(per_target_concurrency=1, per_target_queued=10, stuck_after=5.0)
    for key in ("a", "b"):
        lanes.add(key, job(key))
        taken, item = lanes.next() or ("", BASE)
        lanes.hold(taken, item)
    assert lanes.next() is None
    lanes.release("never-seen")
    lanes.release_all()
    assert sorted(name for _, name, _ in start_all(lanes)) == ["a", "b"]
    assert lanes.waiting("a") == 0 and lanes.waiting("never-seen") == 0
