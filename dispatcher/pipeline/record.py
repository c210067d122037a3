"""Writing delivery outcomes: one transaction per batch of outcomes
(:class:`~dispatcher.pipeline.claim.Outcome`).

:func:`record` applies an outcome only while the delivery still carries the claim token it was
claimed with: a worker whose lease expired (and whose delivery the sweep handed to another)
changes nothing. For the outcomes that apply, in one transaction it

* inserts one :class:`~dispatcher.models.Attempt` per attempt (released outcomes are none),
* updates each delivery: succeeded / failed / pending again with ``next_attempt_at`` (the
  retry schedule of :func:`~dispatcher.pipeline.claim.retry_delay`), lease and claim cleared,
* moves the failure counters: a failed delivery (permanent error or retries exhausted) adds 1
  to its notification's ``number_of_failures``, a success sets it to 0 unless the notification
  is disabled (only a reset re-enables), an internal error moves nothing,
* disables notifications that reached ``settings.max_failures`` and marks their pending
  *event* deliveries ``skipped``,
* stores the failure notices of the failures it counted (:mod:`~dispatcher.pipeline.notices`),

then logs one WARNING line per delivery that ended failed and per notification disabled, and
updates the Prometheus counters. The caller rings for the notices' deliveries
(:attr:`RecordSummary.notices`).
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Table,
    bindparam,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dispatcher.bounds import trim
from dispatcher.config import Settings
from dispatcher.models import Attempt, Delivery, Notification, UTCDateTime, stored_utc, utcnow
from dispatcher.ops import metrics
from dispatcher.ops.logs import log_attempt, log_delivery_failed, log_notification_disabled
from dispatcher.pipeline.attempt import Outcome
from dispatcher.pipeline.claim import skipped
from dispatcher.pipeline.notices import Step, failure_steps, write_notices
from dispatcher.pipeline.policy import (
    Charge,
    Counter,
    CounterChange,
    Transition,
    fold_counter,
    transition,
)
from dispatcher.senders.registry import describe_target
from dispatcher.vocabulary import AttemptResult, DeliveryKind, DeliveryStatus

log = logging.getLogger(__name__)

DELIVERY_TABLE = cast(Table, Delivery.__table__)
NOTIFICATION_TABLE = cast(Table, Notification.__table__)


@dataclass
class RecordSummary:
    """What one :func:`record` call changed (for tests, logs and benchmarks)."""

    applied: int = 0
    stale: int = 0
    disabled: list[int] = field(default_factory=list)
    skipped: int = 0
    notices: list[str] = field(default_factory=list)  # ids of the notices' new deliveries


def record(
    sessions: sessionmaker[Session],
    outcomes: Sequence[Outcome],
    settings: Settings,
    *,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> RecordSummary:
    """Write ``outcomes`` in one transaction (see the module docstring)."""
    summary = RecordSummary()
    if not outcomes:
        return summary
    now = now or utcnow()
    rows = [transition(outcome, settings, now, rng) for outcome in outcomes]
    with sessions() as session, session.begin():
        applied = _update_deliveries(session, rows)
        summary.applied = len(applied)
        summary.stale = len(rows) - len(applied)
        attempts = [
            _attempt_row(row, settings)
            for row in applied
            if row.outcome.result != AttemptResult.RELEASED
        ]
        if attempts:
            session.execute(insert(Attempt), attempts)
        changes = _move_counters(session, applied, settings, now)
        disabled = sorted(nid for nid, change in changes.items() if change.disabled_now)
        summary.disabled = disabled
        if disabled:
            summary.skipped = _skip_pending(session, disabled, now)
        steps = failure_steps(applied, changes)
        summary.notices = _write_notices(session, steps, settings, now)
    _observe(applied, disabled)
    _log_failures(applied, changes, steps)
    return summary


# One statement for the whole batch on PostgreSQL; RETURNING says which rows still matched.
_UPDATE_DELIVERIES_POSTGRESQL = text(
    "UPDATE deliveries AS d SET status = v.status, attempt_count = v.attempt_count,"
    " next_attempt_at = v.next_attempt_at, finished_at = v.finished_at,"
    " lease_until = NULL, claim_token = NULL"
    " FROM unnest(CAST(:ids AS varchar[]), CAST(:claims AS varchar[]),"
    " CAST(:statuses AS varchar[]), CAST(:counts AS integer[]),"
    " CAST(:next AS timestamp[]), CAST(:finished AS timestamp[]))"
    " AS v(id, claim_token, status, attempt_count, next_attempt_at, finished_at)"
    " WHERE d.id = v.id AND d.claim_token = v.claim_token"
    " RETURNING d.id"
)


def _update_deliveries(session: Session, rows: list[Transition]) -> list[Transition]:
    """Apply each row where the claim token still matches; return the rows that applied."""
    if session.get_bind().dialect.name == "postgresql":
        matched = set(
            session.scalars(
                _UPDATE_DELIVERIES_POSTGRESQL,
                {
                    "ids": [row.outcome.job.delivery_id for row in rows],
                    "claims": [row.outcome.job.claim_token for row in rows],
                    "statuses": [row.status for row in rows],
                    "counts": [row.attempt_count for row in rows],
                    "next": [stored_utc(row.next_attempt_at) for row in rows],
                    "finished": [row.finished_at and stored_utc(row.finished_at) for row in rows],
                },
            )
        )
    else:
        matched = _update_deliveries_each(session, rows)
    applied: list[Transition] = []
    for row in rows:
        # a delivery appears once per batch; guard anyway so a duplicate cannot double-count
        if row.outcome.job.delivery_id in matched:
            matched.discard(row.outcome.job.delivery_id)
            applied.append(row)
    return applied


def _update_deliveries_each(session: Session, rows: list[Transition]) -> set[str]:
    """The portable way: one UPDATE per row (executemany). The matching rows are stamped with
    a token of this write, read back by primary key, and then cleared, because an executemany
    UPDATE does not say which of its rows matched. Returns the ids that matched."""
    table = DELIVERY_TABLE
    stamp = str(uuid.uuid4())
    session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.claim_token == bindparam("b_claim"))
        .values(
            status=bindparam("b_status"),
            attempt_count=bindparam("b_count"),
            next_attempt_at=bindparam("b_next", type_=UTCDateTime()),
            finished_at=bindparam("b_finished", type_=UTCDateTime()),
            lease_until=None,
            claim_token=stamp,
        ),
        [
            {
                "b_id": row.outcome.job.delivery_id,
                "b_claim": row.outcome.job.claim_token,
                "b_status": row.status,
                "b_count": row.attempt_count,
                "b_next": row.next_attempt_at,
                "b_finished": row.finished_at,
            }
            for row in rows
        ],
    )
    ids = [row.outcome.job.delivery_id for row in rows]
    matched = set(
        session.scalars(select(table.c.id).where(table.c.id.in_(ids), table.c.claim_token == stamp))
    )
    if matched:
        session.execute(
            update(table).where(table.c.id.in_(sorted(matched))).values(claim_token=None)
        )
    return matched


def _attempt_row(row: Transition, settings: Settings) -> dict[str, Any]:
    outcome = row.outcome
    return {
        "delivery_id": outcome.job.delivery_id,
        "number": outcome.job.attempt_number,
        "started_at": outcome.started_at,
        "outcome": outcome.result,
        "status_code": outcome.status_code,
        "latency_ms": outcome.latency_ms,
        "error": outcome.error,
        "response_excerpt": trim(outcome.response_excerpt, settings.response_excerpt_bytes),
    }


def _move_counters(
    session: Session, rows: list[Transition], settings: Settings, now: datetime
) -> dict[int, CounterChange]:
    """Apply the batch's charges to each notification's counter, in outcome order (see
    :func:`~dispatcher.pipeline.policy.fold_counter`): read the counters (locked on
    PostgreSQL, in id order so that two batches cannot deadlock), fold, write what changed,
    and disable the notifications that reached ``settings.max_failures``."""
    charges: dict[int, list[Charge]] = {}
    for row in rows:
        if row.charge is not Charge.NONE:
            charges.setdefault(row.outcome.job.notification_id, []).append(row.charge)
    if not charges:
        return {}
    table = NOTIFICATION_TABLE
    current = session.execute(
        select(table.c.id, table.c.number_of_failures, table.c.disabled_at)
        .where(table.c.id.in_(sorted(charges)))
        .order_by(table.c.id)
        # FOR NO KEY UPDATE: the counters change, no key does, so a notice delivery inserted
        # by another batch for one of these notifications (its foreign key check takes FOR
        # KEY SHARE) does not wait for this one, and two batches cannot deadlock on it.
        .with_for_update(key_share=True)
    ).all()
    changes = {
        nid: fold_counter(
            Counter(failures, disabled_at is not None), charges[nid], settings.max_failures
        )
        for nid, failures, disabled_at in current
    }
    moved = [(nid, change) for nid, change in changes.items() if change.after != change.before]
    if moved:
        _write_counters(session, moved, now)
    return changes


_SET_COUNTERS_POSTGRESQL = text(
    "UPDATE notifications AS n SET number_of_failures = v.failures,"
    " disabled_at = CASE WHEN v.disable THEN :now ELSE n.disabled_at END,"
    " updated_at = CASE WHEN v.disable THEN :now ELSE n.updated_at END"
    " FROM unnest(CAST(:ids AS integer[]), CAST(:failures AS integer[]),"
    " CAST(:disable AS boolean[])) AS v(id, failures, disable)"
    " WHERE n.id = v.id"
).bindparams(bindparam("now", type_=UTCDateTime()))


def _write_counters(
    session: Session, moved: list[tuple[int, CounterChange]], now: datetime
) -> None:
    """Write the new counters; stamp ``disabled_at`` (and ``updated_at``) where one is
    disabled now. PostgreSQL: one statement over arrays; elsewhere one per notification."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            _SET_COUNTERS_POSTGRESQL,
            {
                "ids": [nid for nid, _ in moved],
                "failures": [change.after.failures for _, change in moved],
                "disable": [change.disabled_now for _, change in moved],
                "now": now,
            },
        )
        return
    table = NOTIFICATION_TABLE
    for nid, change in moved:
        values: dict[str, Any] = {"number_of_failures": change.after.failures}
        if change.disabled_now:
            values.update(disabled_at=now, updated_at=now)
        session.execute(update(table).where(table.c.id == nid).values(values))


def _skip_pending(session: Session, notification_ids: list[int], now: datetime) -> int:
    table = DELIVERY_TABLE
    result = session.execute(
        update(table)
        .where(
            table.c.notification_id.in_(notification_ids),
            table.c.status == DeliveryStatus.PENDING,
            table.c.kind == DeliveryKind.EVENT,
        )
        .values(skipped(now))
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _observe(rows: list[Transition], disabled: list[int]) -> None:
    methods: dict[int, str] = {}
    for row in rows:
        outcome = row.outcome
        method = outcome.job.method
        methods[outcome.job.notification_id] = method
        if outcome.result == AttemptResult.RELEASED:
            continue
        log_attempt(
            delivery_id=outcome.job.delivery_id,
            notification_uuid=outcome.job.notification_uuid,
            method=method,
            outcome=outcome.result,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            target=describe_target(method, outcome.job.config),
            attempt=outcome.job.attempt_number,
            error=outcome.error,
        )
        metrics.ATTEMPTS.labels(method=method, outcome=outcome.result).inc()
        metrics.ATTEMPT_LATENCY.labels(method=method).observe(outcome.latency_ms / 1000.0)
        if row.status == DeliveryStatus.PENDING:
            metrics.RETRIES.labels(method=method).inc()
        else:
            metrics.DELIVERIES.labels(method=method, outcome=row.status).inc()
    for notification_id in disabled:
        metrics.NOTIFICATIONS_DISABLED.labels(method=methods.get(notification_id, "")).inc()


def _write_notices(
    session: Session, steps: list[Step], settings: Settings, now: datetime
) -> list[str]:
    """:func:`~dispatcher.pipeline.notices.write_notices` in a savepoint: a notice that cannot
    be written (its listener deleted meanwhile) costs the notices, never the outcomes."""
    try:
        with session.begin_nested():
            return write_notices(session, steps, settings, now)
    except IntegrityError:
        log.warning(
            "could not store the failure notices of %d failures: a listener went away", len(steps)
        )
        return []


def _log_failures(
    rows: list[Transition], changes: dict[int, CounterChange], steps: list[Step]
) -> None:
    """One WARNING line per delivery that ended failed, and one per notification disabled."""
    counted = {step.row.outcome.job.delivery_id: step for step in steps}
    for row in rows:
        if row.status != DeliveryStatus.FAILED:
            continue
        job, outcome = row.outcome.job, row.outcome
        step = counted.get(row.outcome.job.delivery_id)
        change = changes.get(job.notification_id)
        if step is not None:
            failures: int | None = step.failures
        else:  # not counted (our own error): the counter as it stands, when this batch read it
            failures = change.after.failures if change is not None else None
        fields = {
            "delivery_id": job.delivery_id,
            "notification_uuid": job.notification_uuid,
            "repository": f"{job.namespace}/{job.repository}",
            "method": job.method,
            "target": describe_target(job.method, job.config),
            "failures": failures,
            "status_code": outcome.status_code,
            "error": outcome.error,
        }
        log_delivery_failed(**fields)
        if step is not None and step.disables:
            log_notification_disabled(**fields)


__all__ = ["RecordSummary", "record"]
