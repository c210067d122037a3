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

then updates the Prometheus counters.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    Table,
    and_,
    bindparam,
    column,
    func,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from dispatcher.bounds import trim
from dispatcher.config import Settings
from dispatcher.models import Attempt, Delivery, Notification, UTCDateTime, stored_utc, utcnow
from dispatcher.ops import metrics
from dispatcher.ops.logs import log_attempt
from dispatcher.pipeline.attempt import Outcome
from dispatcher.pipeline.claim import skipped
from dispatcher.pipeline.policy import Transition, counter_moves, transition
from dispatcher.senders.registry import describe_target
from dispatcher.vocabulary import AttemptResult, DeliveryKind, DeliveryStatus

DELIVERY_TABLE = cast(Table, Delivery.__table__)
NOTIFICATION_TABLE = cast(Table, Notification.__table__)


@dataclass
class RecordSummary:
    """What one :func:`record` call changed (for tests, logs and benchmarks)."""

    applied: int = 0
    stale: int = 0
    disabled: list[int] = field(default_factory=list)
    skipped: int = 0


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
        disabled = _move_counters(session, applied, settings, now)
        summary.disabled = disabled
        if disabled:
            summary.skipped = _skip_pending(session, disabled, now)
    _observe(applied, disabled)
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
) -> list[int]:
    """Update ``number_of_failures`` in outcome order; return the notifications disabled now."""
    moves = counter_moves((row.outcome.job.notification_id, row.charge) for row in rows)
    # A success clears the streak but must not re-enable: only a reset does that.
    _apply_counts(session, _set_failures_of_enabled, moves.set_if_enabled)
    _apply_counts(session, _add_failures, moves.add)
    _apply_counts(session, _add_failures_of_disabled, moves.add_if_disabled)
    charged = moves.charged
    if not charged:
        return []
    table = NOTIFICATION_TABLE
    return list(
        session.scalars(
            update(table)
            .where(
                table.c.id.in_(charged),
                table.c.disabled_at.is_(None),
                table.c.number_of_failures >= settings.max_failures,
            )
            .values(disabled_at=now, updated_at=now)
            .returning(table.c.id)
        )
    )


# How each kind of counter move sets ``number_of_failures`` and which rows it touches, given
# the notification's ``n`` (a column of the batch).
Count = ColumnElement[int]
_FAILURES = NOTIFICATION_TABLE.c.number_of_failures
_DISABLED_AT = NOTIFICATION_TABLE.c.disabled_at


def _set_failures_of_enabled(n: Count) -> tuple[Count, ColumnElement[bool]]:
    return n, and_(_DISABLED_AT.is_(None), n != _FAILURES)


def _add_failures(n: Count) -> tuple[Count, ColumnElement[bool]]:
    return _FAILURES + n, true()


def _add_failures_of_disabled(n: Count) -> tuple[Count, ColumnElement[bool]]:
    return _FAILURES + n, _DISABLED_AT.is_not(None)


def _apply_counts(
    session: Session,
    move: Callable[[Count], tuple[Count, ColumnElement[bool]]],
    counts: dict[int, int],
) -> None:
    """Move the counters of ``counts`` (notification id → n): on PostgreSQL in one statement
    over unnest()ed arrays, elsewhere in one statement per notification (executemany)."""
    if not counts:
        return
    table = NOTIFICATION_TABLE
    if session.get_bind().dialect.name == "postgresql":
        batch = (
            func.unnest(
                bindparam("ids", type_=ARRAY(Integer)), bindparam("counts", type_=ARRAY(Integer))
            )
            .table_valued(column("id", Integer), column("n", Integer))
            .render_derived()
        )
        value, condition = move(batch.c.n)
        session.execute(
            update(table)
            .where(table.c.id == batch.c.id, condition)
            .values(number_of_failures=value),
            {"ids": list(counts), "counts": list(counts.values())},
        )
        return
    value, condition = move(bindparam("b_n", type_=Integer))
    session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"), condition)
        .values(number_of_failures=value),
        [{"b_id": nid, "b_n": n} for nid, n in counts.items()],
    )


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


__all__ = ["RecordSummary", "record"]
