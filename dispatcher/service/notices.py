"""The operator's notice targets: ``DISPATCHER_NOTICE_WEBHOOK`` and ``DISPATCHER_NOTICE_EMAIL``.

Each configured target is kept as two notifications (``notification_failing`` and
``notification_disabled``) of the reserved repository
:data:`~dispatcher.pipeline.notices.OPERATOR_REPOSITORY`, which
:func:`~dispatcher.pipeline.notices.write_notices` fans every notice out to. Being ordinary
notifications, they have a delivery log, retries and a failure counter of their own
(``dispatcher notifications list`` shows them; ``reset`` re-enables one), while no API call can
reach their repository. :func:`sync_operator_notices` makes the rows match the settings (and
says which of them are disabled: nothing else would); every worker calls it when it starts.
Their uuids are derived from event, method and target, so two workers starting at once add
each one once.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dispatcher.config import Settings
from dispatcher.events import NOTICE_EVENTS
from dispatcher.models import Notification, Repository, utcnow
from dispatcher.pipeline import outbox
from dispatcher.pipeline.notices import OPERATOR_REPOSITORY
from dispatcher.service.repositories import ensure_repository

log = logging.getLogger(__name__)

_UUIDS = uuid.UUID("5d1b6c0e-8f4e-4d0a-9a57-0c6f2b1d3e41")  # namespace of the derived uuids


def operator_targets(settings: Settings) -> list[tuple[str, dict[str, str]]]:
    """``(method, config)`` of each operator target the settings name."""
    targets: list[tuple[str, dict[str, str]]] = []
    if settings.notice_webhook:
        targets.append(("webhook", {"url": settings.notice_webhook}))
    if settings.notice_email:
        targets.append(("email", {"email": settings.notice_email}))
    return targets


def sync_operator_notices(sessions: sessionmaker[Session], settings: Settings) -> int:
    """Make the operator's notice notifications match the settings: add the missing ones,
    remove those no longer configured (with their deliveries). Returns how many there are."""
    wanted = {
        str(uuid.uuid5(_UUIDS, f"{event}\n{method}\n{sorted(config.items())}")): (
            event,
            method,
            config,
        )
        for method, config in operator_targets(settings)
        for event in NOTICE_EVENTS
    }
    for attempt in range(2):  # a second worker may register the repository at the same time
        try:
            with sessions() as session, session.begin():
                _sync(session, wanted)
                _warn_disabled(session)
            return len(wanted)
        except IntegrityError:
            if attempt:
                raise
    return len(wanted)


def _warn_disabled(session: Session) -> None:
    """A WARNING line per operator target disabled by its own failures: nothing else tells of
    it (no notice is ever sent about a notice target)."""
    namespace, name = OPERATOR_REPOSITORY
    disabled = session.scalars(
        select(Notification)
        .join(Repository)
        .where(
            Repository.namespace == namespace,
            Repository.name == name,
            Notification.disabled_at.is_not(None),
        )
    ).all()
    for notification in disabled:
        log.warning(
            "operator notice target %s (%s %s) is disabled after %d failures: it hears of no "
            "failure until 'dispatcher notifications reset %s'",
            notification.uuid,
            notification.method,
            notification.event,
            notification.number_of_failures,
            notification.uuid,
        )


def _sync(session: Session, wanted: dict[str, tuple[str, str, dict[str, str]]]) -> None:
    namespace, name = OPERATOR_REPOSITORY
    repository = session.scalars(
        select(Repository).where(Repository.namespace == namespace, Repository.name == name)
    ).one_or_none()
    if repository is None:
        if not wanted:
            return
        repository = ensure_repository(session, namespace, name)
    stale = select(Notification.id).where(
        Notification.repository_id == repository.id, Notification.uuid.not_in(sorted(wanted))
    )
    outbox.discard_deliveries(session, stale)
    session.execute(
        delete(Notification).where(
            Notification.repository_id == repository.id,
            Notification.uuid.not_in(sorted(wanted)),
        )
    )
    if not wanted:
        return
    dialect_insert = (
        postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    )
    now = utcnow()
    session.execute(
        dialect_insert(Notification).on_conflict_do_nothing(index_elements=["uuid"]),
        [
            {
                "uuid": notification_uuid,
                "repository_id": repository.id,
                "event": event,
                "method": method,
                "config": config,
                "event_config": {},
                "title": "Operator notices",
                "number_of_failures": 0,
                "created_at": now,
                "updated_at": now,
            }
            for notification_uuid, (event, method, config) in wanted.items()
        ],
    )


__all__ = ["operator_targets", "sync_operator_notices"]
