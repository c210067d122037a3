"""The delivery policy, pure: retry delays, transitions, the failure counter's moves. No
database, no threads."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.config import Settings
from dispatcher.pipeline.attempt import Outcome
from dispatcher.pipeline.policy import Charge, Counter, fold_counter, retry_delay, transition
from dispatcher.vocabulary import AttemptResult, DeliveryStatus
from tests.unit.pipeline_helpers import make_job

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
SETTINGS = Settings(retry_schedule="10,60", retry_jitter=0)
JOB = make_job(lease_until=NOW)


def outcome(result: AttemptResult, attempt: int = 1, **fields: object) -> Outcome:
    return Outcome(replace(JOB, attempt_number=attempt), result, NOW, **fields)  # type: ignore[arg-type]


def test_retry_delay_jitter_bounds_and_exhaustion() -> None:
    settings = Settings(retry_schedule="10,0.25", retry_jitter=0.2)
    rng = random.Random(7)
    samples = [retry_delay(1, settings, rng=rng) for _ in range(500)]
    assert all(s is not None and 8.0 <= s <= 12.0 for s in samples)
    assert max(s for s in samples if s) - min(s for s in samples if s) > 2.0  # it does vary
    assert 0.2 <= (retry_delay(2, settings, rng=rng) or 0) <= 0.3  # sub-second works
    assert retry_delay(3, settings, rng=rng) is None


def test_retry_after_is_honoured_and_capped() -> None:
    settings = Settings(retry_schedule="1", retry_jitter=0, retry_after_max=50)
    assert retry_delay(1, settings, retry_after=30) == 30
    assert retry_delay(1, settings, retry_after=500) == 50
    assert retry_delay(1, settings, retry_after=0.1) == 1


@pytest.mark.parametrize(
    ("result", "attempt", "status", "count", "due_in", "finished", "charge"),
    [
        (AttemptResult.SUCCEEDED, 1, DeliveryStatus.SUCCEEDED, 1, 0, True, Charge.SUCCESS),
        (AttemptResult.TRANSIENT, 1, DeliveryStatus.PENDING, 1, 10, False, Charge.NONE),
        (AttemptResult.TRANSIENT, 2, DeliveryStatus.PENDING, 2, 60, False, Charge.NONE),
        (AttemptResult.TRANSIENT, 3, DeliveryStatus.FAILED, 3, 0, True, Charge.FAILURE),
        (AttemptResult.PERMANENT, 1, DeliveryStatus.FAILED, 1, 0, True, Charge.FAILURE),
        (AttemptResult.INTERNAL, 1, DeliveryStatus.FAILED, 1, 0, True, Charge.NONE),
        (AttemptResult.RELEASED, 2, DeliveryStatus.PENDING, 1, 0, False, Charge.NONE),
    ],
)
def test_what_an_outcome_makes_of_its_delivery(
    result: AttemptResult,
    attempt: int,
    status: DeliveryStatus,
    count: int,
    due_in: float,
    finished: bool,
    charge: Charge,
) -> None:
    error = None if result in (AttemptResult.SUCCEEDED, AttemptResult.RELEASED) else "boom"
    moved = transition(outcome(result, attempt, error=error), SETTINGS, NOW)
    assert moved.status == status
    assert moved.attempt_count == count  # a release is no attempt
    assert moved.next_attempt_at == NOW + timedelta(seconds=due_in)
    assert moved.finished_at == (NOW if finished else None)
    assert moved.charge is charge


def test_a_release_waits_its_delay_and_a_retry_after_is_honoured() -> None:
    released = transition(outcome(AttemptResult.RELEASED, 3, delay=2.5), SETTINGS, NOW)
    assert released.next_attempt_at == NOW + timedelta(seconds=2.5)
    assert released.attempt_count == 2
    throttled = transition(outcome(AttemptResult.TRANSIENT, 1, retry_after=30.0), SETTINGS, NOW)
    assert throttled.next_attempt_at == NOW + timedelta(seconds=30)


FAIL, OK, NONE = Charge.FAILURE, Charge.SUCCESS, Charge.NONE


@pytest.mark.parametrize(
    ("before", "charges", "after", "failed_at"),
    [
        (Counter(0, False), [FAIL, OK], Counter(0, False), (1,)),
        (Counter(0, False), [OK, FAIL], Counter(1, False), (1,)),
        (Counter(2, False), [OK], Counter(0, False), ()),
        (Counter(1, False), [FAIL, FAIL, OK], Counter(3, True), (2, 3)),  # disabled at 3
        (Counter(0, False), [FAIL, FAIL, OK], Counter(0, False), (1, 2)),
        (Counter(3, True), [FAIL, OK], Counter(4, True), (4,)),  # disabled: no reset
        (Counter(3, True), [OK, FAIL], Counter(4, True), (4,)),
        (Counter(3, True), [OK], Counter(3, True), ()),
        (Counter(1, False), [NONE, NONE], Counter(1, False), ()),
    ],
)
def test_a_batch_moves_the_counter_as_its_outcomes_would_one_by_one(
    before: Counter, charges: list[Charge], after: Counter, failed_at: tuple[int, ...]
) -> None:
    change = fold_counter(before, charges, max_failures=3)
    assert (change.after, change.failed_at) == (after, failed_at)
    assert change.disabled_now == (after.disabled and not before.disabled)
    # the failure that disabled it is the one that reached the limit, and only in this batch
    assert change.disabled_by == (3 if change.disabled_now else None)
