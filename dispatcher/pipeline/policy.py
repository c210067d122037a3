"""The delivery policy, pure: no database, no clock beyond what is passed in.

* :func:`retry_delay`: how long to wait before the next attempt, or None when the schedule is
  exhausted (``settings.retry_schedule`` with jitter, a receiver's ``Retry-After`` honoured);
* :func:`transition`: what one :class:`~dispatcher.pipeline.attempt.Outcome` makes of its
  delivery (status, next attempt, attempt count, end time) and what it does to the
  notification's failure counter (:class:`Charge`);
* :func:`fold_counter`: a batch's charges of one notification, in outcome order, applied to
  its counter as if each outcome had been recorded alone.

(A delivery of a disabled notification is ``skipped``: see
:func:`dispatcher.pipeline.claim.skipped`.)

The state machine these decide::

    pending ──claim──▶ pending + claim_token, lease_until = now + lease_seconds
       ▲                 │ attempt
       │   transient,    ├── success ──────────────▶ succeeded   (counter := 0)
       │   retries left  ├── permanent / exhausted ─▶ failed      (counter += 1)
       └─ next_attempt_at├── internal error ───────▶ failed      (counter untouched)
          = now + delay  └── released (target busy) ▶ pending again, no attempt counted
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from dispatcher.config import Settings
from dispatcher.pipeline.attempt import Outcome
from dispatcher.vocabulary import AttemptResult, DeliveryStatus


class Charge(Enum):
    """What an outcome does to its notification's ``number_of_failures``."""

    NONE = "none"  # untouched: no attempt, a retry to come, or our own bug
    FAILURE = "failure"  # +1
    SUCCESS = "success"  # back to 0, unless the notification is disabled


@dataclass(frozen=True)
class Transition:
    """The new column values of a delivery after ``outcome``, and its charge."""

    outcome: Outcome
    status: DeliveryStatus
    next_attempt_at: datetime
    attempt_count: int
    finished_at: datetime | None
    charge: Charge


def retry_delay(
    attempt_number: int,
    settings: Settings,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before retrying after failed attempt ``attempt_number`` (1-based), or
    None when the schedule is exhausted.

    The schedule's delay is scaled by a factor in ``[1 - retry_jitter, 1 + retry_jitter]``; a
    ``Retry-After`` the target sent is honoured (never retried sooner), capped at
    ``retry_after_max``."""
    delays = settings.retry_delays
    if attempt_number > len(delays):
        return None
    jitter = settings.retry_jitter
    factor = 1.0 + (rng or random).uniform(-jitter, jitter) if jitter else 1.0
    delay = delays[attempt_number - 1] * factor
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.retry_after_max))
    return max(delay, 0.0)


def transition(
    outcome: Outcome, settings: Settings, now: datetime, rng: random.Random | None = None
) -> Transition:
    """What ``outcome`` makes of its delivery at ``now`` (see the module docstring)."""
    count = outcome.job.attempt_number
    pending, failed = DeliveryStatus.PENDING, DeliveryStatus.FAILED
    result = outcome.result
    if result == AttemptResult.RELEASED:
        later = now + timedelta(seconds=outcome.delay)
        return Transition(outcome, pending, later, count - 1, None, Charge.NONE)
    if result == AttemptResult.SUCCEEDED:
        return Transition(outcome, DeliveryStatus.SUCCEEDED, now, count, now, Charge.SUCCESS)
    if result == AttemptResult.TRANSIENT:
        delay = retry_delay(count, settings, outcome.retry_after, rng)
        if delay is not None:
            later = now + timedelta(seconds=delay)
            return Transition(outcome, pending, later, count, None, Charge.NONE)
        return Transition(outcome, failed, now, count, now, Charge.FAILURE)
    if result == AttemptResult.PERMANENT:
        return Transition(outcome, failed, now, count, now, Charge.FAILURE)
    return Transition(outcome, failed, now, count, now, Charge.NONE)


@dataclass(frozen=True)
class Counter:
    """A notification's failure counter and whether it is disabled."""

    failures: int
    disabled: bool


@dataclass(frozen=True)
class CounterChange:
    """What one batch's charges did to a notification's counter. ``failed_at`` holds the
    counter's value after each failure, in order (one step of the streak each);
    ``disabled_by`` the value of the failure that disabled the notification in this batch."""

    before: Counter
    after: Counter
    failed_at: tuple[int, ...]
    disabled_by: int | None = None

    @property
    def disabled_now(self) -> bool:
        return self.after.disabled and not self.before.disabled


def fold_counter(before: Counter, charges: Iterable[Charge], max_failures: int) -> CounterChange:
    """Apply ``charges`` (in outcome order) to ``before``, one after the other, as if each
    outcome had been recorded alone: a failure adds 1 and disables the notification when the
    counter reaches ``max_failures``; a success sets it back to 0, unless the notification is
    disabled (only a reset re-enables it); a charge of ``NONE`` does nothing."""
    failures, disabled = before.failures, before.disabled
    failed_at: list[int] = []
    disabled_by: int | None = None
    for charge in charges:
        if charge is Charge.FAILURE:
            failures += 1
            failed_at.append(failures)
            if not disabled and failures >= max_failures:
                disabled, disabled_by = True, failures
        elif charge is Charge.SUCCESS and not disabled:
            failures = 0
    return CounterChange(before, Counter(failures, disabled), tuple(failed_at), disabled_by)


__all__ = [
    "Charge",
    "Counter",
    "CounterChange",
    "Transition",
    "fold_counter",
    "retry_delay",
    "transition",
]
