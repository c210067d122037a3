"""Use cases for operators, across repositories: find notifications by uuid or state, reset
many at once. ``dispatcher notifications`` calls these; the API works per repository instead
(see :mod:`dispatcher.service`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from dispatcher.bounds import is_uuid
from dispatcher.errors import NotFoundError, echo
from dispatcher.models import Notification, Repository
from dispatcher.service import notifications as service


def find_notifications(
    session: Session,
    *,
    repository: str | None = None,
    failing: bool = False,
    disabled: bool = False,
) -> Sequence[Notification]:
    """Notifications ordered by repository then creation. ``failing``: with at least one
    failure counted; ``disabled``: disabled by the failure counter; ``repository``: one
    ``namespace/name`` (NotFoundError when it is not registered)."""
    query = (
        select(Notification)
        .join(Repository, Notification.repository_id == Repository.id)
        .options(joinedload(Notification.repository))
        .order_by(Repository.namespace, Repository.name, Notification.id)
    )
    if repository is not None:
        namespace, name = service.parse_repository_name(repository)
        query = query.where(Repository.id == service.get_repository(session, namespace, name).id)
    if failing:
        query = query.where(Notification.number_of_failures > 0)
    if disabled:
        query = query.where(Notification.disabled_at.is_not(None))
    return session.scalars(query).all()


def notifications_by_uuid(session: Session, uuids: Sequence[str]) -> list[Notification]:
    """The notifications named, in the order given; NotFoundError naming every unknown uuid."""
    found = {
        item.uuid: item
        for item in session.scalars(
            select(Notification)
            .where(Notification.uuid.in_({uuid for uuid in uuids if is_uuid(uuid)}))
            .options(joinedload(Notification.repository))
        )
    }
    unknown = [echo(uuid) for uuid in uuids if uuid not in found]
    if unknown:
        raise NotFoundError(f"No notification with uuid {', '.join(unknown)}")
    return [found[uuid] for uuid in dict.fromkeys(uuids)]


def reset_many(
    session: Session,
    notifications: Sequence[Notification],
    *,
    batch_size: int,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Reset the failure counter of each notification (re-enabling it), committing every
    ``batch_size``, and report ``(done, total)`` after each batch. Returns how many."""
    total = len(notifications)
    for done, notification in enumerate(notifications, start=1):
        service.reset_failures(session, notification)
        if done % batch_size == 0 or done == total:
            session.commit()
            if progress is not None:
                progress(done, total)
    return total
