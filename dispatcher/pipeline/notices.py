"""Failure notices: what a failed delivery tells the people who own its notification.

When :func:`~dispatcher.pipeline.record.record` moves a notification's failure counter, every
failure is one step of its streak (:attr:`~dispatcher.pipeline.policy.CounterChange.failed_at`).
Each step is reported once as a ``notification_failing`` event of the notification's own
repository, and the step that disables it once more as ``notification_disabled``
(:data:`dispatcher.events.NOTICE_EVENTS`). They are fanned out, in the transaction of the
outcomes, to

* the repository's enabled notifications subscribed to that event (any method), and
* the operator's notifications: those of the reserved repository :data:`OPERATOR_REPOSITORY`
  (``DISPATCHER_NOTICE_WEBHOOK`` / ``DISPATCHER_NOTICE_EMAIL``, kept by
  :func:`dispatcher.service.notices.sync_operator_notices`), which hear of every repository.

A notice is never reported about a notification that itself delivers notices: a failing
notice target cannot start a loop or a storm. A step nobody listens to stores nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from dispatcher.config import Settings
from dispatcher.events import NOTICE_EVENTS, event_data, reenable_hint
from dispatcher.models import Notification, Repository
from dispatcher.pipeline import outbox
from dispatcher.pipeline.policy import Charge, CounterChange, Transition
from dispatcher.senders.registry import describe_target
from dispatcher.vocabulary import DeliveryKind

# Where the operator's notice targets live: a namespace Quay's rules refuse, so no API call,
# producer or repository admin can reach it.
OPERATOR_REPOSITORY = ("_dispatcher", "notices")
FAILING, DISABLED = NOTICE_EVENTS


@dataclass(frozen=True)
class Step:
    """One failure of a notification's streak: the outcome's row and the counter after it."""

    row: Transition
    failures: int
    disables: bool  # this step reached the limit and disabled the notification


def failure_steps(rows: Sequence[Transition], changes: Mapping[int, CounterChange]) -> list[Step]:
    """The failure steps of a batch, in outcome order: the i-th failure of a notification in
    ``rows`` is the i-th value of its change's ``failed_at``."""
    seen: dict[int, int] = {}
    steps: list[Step] = []
    for row in rows:
        if row.charge is not Charge.FAILURE:
            continue
        nid = row.outcome.job.notification_id
        change = changes.get(nid)
        if change is None:
            continue
        index = seen[nid] = seen.get(nid, -1) + 1
        failures = change.failed_at[index]
        steps.append(Step(row, failures, disables=failures == change.disabled_by))
    return steps


def write_notices(
    session: Session, steps: Sequence[Step], settings: Settings, now: datetime
) -> list[str]:
    """Store the notices of ``steps`` and their deliveries in ``session``; the new delivery
    ids (for the caller to ring once committed)."""
    steps = [step for step in steps if step.row.outcome.job.event_name not in NOTICE_EVENTS]
    if not steps:
        return []
    failing_ids = sorted({step.row.outcome.job.notification_id for step in steps})
    listeners = _listeners(session, failing_ids)
    if not listeners:  # nobody hears of failures: the common case costs one query
        return []
    repository_of = dict(
        session.execute(
            select(Notification.id, Notification.repository_id).where(
                Notification.id.in_(failing_ids)
            )
        ).all()
    )
    delivery_ids: list[str] = []
    for step in steps:
        job = step.row.outcome.job
        repository_id = repository_of.get(job.notification_id)
        if repository_id is None:  # deleted meanwhile
            continue
        events = [FAILING, DISABLED] if step.disables else [FAILING]
        for event in events:
            targets = [
                nid
                for nid, rid, listens_to, operator in listeners
                if listens_to == event and (operator or rid == repository_id)
            ]
            if targets:
                data = _notice_data(step, event, settings)
                stored = outbox.new_event(repository_id, event, data, None, now)
                delivery_ids += outbox.add_event_with_deliveries(
                    session, stored, targets, DeliveryKind.EVENT
                )
    return delivery_ids


def _listeners(session: Session, failing_ids: list[int]) -> list[tuple[int, int, str, bool]]:
    """``(notification id, repository id, event, is the operator's)`` of every enabled
    notification of a notice event in the repositories of ``failing_ids`` or in the
    operator's repository."""
    namespace, name = OPERATOR_REPOSITORY
    operator = and_(Repository.namespace == namespace, Repository.name == name)
    failing_repositories = select(Notification.repository_id).where(
        Notification.id.in_(failing_ids)
    )
    rows = session.execute(
        select(Notification.id, Repository.id, Notification.event, operator)
        .join(Repository, Repository.id == Notification.repository_id)
        .where(
            Notification.event.in_(NOTICE_EVENTS),
            Notification.disabled_at.is_(None),
            or_(Repository.id.in_(failing_repositories), operator),
        )
        .order_by(Notification.id)
    ).all()
    return [(nid, rid, event, bool(is_operator)) for nid, rid, event, is_operator in rows]


def _notice_data(step: Step, event: str, settings: Settings) -> dict[str, Any]:
    outcome = step.row.outcome
    job = outcome.job
    namespace, name = job.namespace, job.repository
    extra: dict[str, Any] = {
        "notification": {
            "uuid": job.notification_uuid,
            "title": job.title,
            "event": job.event_name,
            "method": job.method,
            "target": describe_target(job.method, job.config),
        },
        "number_of_failures": step.failures,
        "max_failures": settings.max_failures,
        "delivery_id": job.delivery_id,
        "status_code": outcome.status_code,
        "error": outcome.error,
    }
    if event == DISABLED:
        extra["reenable"] = reenable_hint(namespace, name, job.notification_uuid)
    return event_data(
        namespace,
        name,
        extra,
        server_hostname=settings.server_hostname,
        url_scheme=settings.preferred_url_scheme,
    )


__all__ = ["OPERATOR_REPOSITORY", "Step", "failure_steps", "write_notices"]
