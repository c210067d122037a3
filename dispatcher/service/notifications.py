"""Use cases on notifications: create, list, find, delete, reset, test (per repository, what
the API and the console call), and the operators' views across repositories (what
``dispatcher notifications`` calls).

Functions take an open session and leave committing to the caller, except those that ring the
doorbell: they commit first, then ring, so a worker never looks for a row not yet visible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from dispatcher import bounds
from dispatcher.bounds import is_uuid
from dispatcher.config import Settings
from dispatcher.errors import InvalidFieldError, NotFoundError, echo
from dispatcher.events import event_data, get_event
from dispatcher.models import Delivery, Notification, Repository, utcnow
from dispatcher.pipeline import outbox
from dispatcher.pipeline.doorbell import Doorbell
from dispatcher.pipeline.notices import OPERATOR_REPOSITORY
from dispatcher.service.authorized_emails import require_authorized
from dispatcher.service.repositories import get_repository, parse_repository_name
from dispatcher.vocabulary import DeliveryKind

TITLE_MAX = 255


def create_notification(
    session: Session,
    repository: Repository,
    *,
    event: str,
    method: str,
    config: dict[str, Any],
    event_config: dict[str, Any],
    title: str | None,
    settings: Settings,
) -> Notification:
    """Validate and store a notification. Raises InvalidRequestError with Quay's messages,
    and for values beyond :mod:`dispatcher.bounds` (nesting, size, text)."""
    # Here, not at the top: the senders load httpx, Jinja and the e-mail validator, which
    # commands that only list or add repositories do not need.
    from dispatcher.senders import registry

    bounds.check_text(event, "event")
    bounds.check_text(method, "method")
    event_type = get_event(event)
    limits = {"max_depth": settings.max_json_depth, "max_bytes": settings.max_config_bytes}
    bounds.check_value(config, "config", **limits)
    bounds.check_value(event_config, "eventConfig", **limits)
    if title is not None:
        bounds.check_text(title, "title")
        if len(title) > TITLE_MAX:
            raise InvalidFieldError(
                f"'title' is too long (maximum {TITLE_MAX} characters)", location=("", "title")
            )
    stored_config = registry.validate_config(method, config, settings)
    if method == "email":
        require_authorized(session, repository, stored_config, settings)
    event_type.validate_config(event_config, settings)
    notification = Notification(
        repository_id=repository.id,
        event=event,
        method=method,
        config=stored_config,
        event_config=event_config,
        title=title,
        number_of_failures=0,
    )
    session.add(notification)
    session.flush()
    return notification


def list_notifications(session: Session, repository: Repository) -> Sequence[Notification]:
    return session.scalars(
        select(Notification)
        .where(Notification.repository_id == repository.id)
        .order_by(Notification.id)
    ).all()


def find_notification(session: Session, repository: Repository, uuid: str) -> Notification | None:
    """The notification ``uuid`` of this repository; a uuid of another one is not found."""
    return session.scalars(
        select(Notification).where(
            Notification.repository_id == repository.id, Notification.uuid == uuid
        )
    ).one_or_none()


def delete_notification(session: Session, notification: Notification) -> None:
    """Delete ``notification`` with its deliveries."""
    outbox.discard_deliveries(session, [notification.id])
    session.delete(notification)


def reset_failures(session: Session, notification: Notification) -> None:
    """Set ``number_of_failures`` to 0 and re-enable the notification."""
    session.execute(
        update(Notification)
        .where(Notification.id == notification.id)
        .values(number_of_failures=0, disabled_at=None, updated_at=utcnow())
    )


def queue_test(
    session: Session, notification: Notification, settings: Settings, doorbell: Doorbell
) -> Delivery:
    """Store the event's sample data and one test delivery, commit, then ring.

    Test deliveries are sent even while the notification is disabled."""
    repository = notification.repository
    event_type = get_event(notification.event)
    now = utcnow()
    extra = event_type.sample(notification.event_config or {}, now)
    data = event_data(
        repository.namespace,
        repository.name,
        extra,
        server_hostname=settings.server_hostname,
        url_scheme=settings.preferred_url_scheme,
        subpage=event_type.subpage(extra),
    )
    event = outbox.new_event(repository.id, notification.event, data, None, now)
    (delivery_id,) = outbox.add_event_with_deliveries(
        session, event, [notification.id], DeliveryKind.TEST
    )
    session.commit()
    delivery = session.get_one(Delivery, delivery_id)
    doorbell.ring([delivery_id])
    return delivery


# -- across repositories, for operators ----------------------------------------------------


def find_notifications(
    session: Session,
    *,
    repository: str | None = None,
    failing: bool = False,
    disabled: bool = False,
) -> Sequence[Notification]:
    """Notifications ordered by repository then creation. ``failing``: with at least one
    failure counted; ``disabled``: disabled by the failure counter; ``repository``: one
    ``namespace/name`` (NotFoundError when it is not registered), or the operator's notice
    targets' ``_dispatcher/notices``."""
    query = (
        select(Notification)
        .join(Repository, Notification.repository_id == Repository.id)
        .options(joinedload(Notification.repository))
        .order_by(Repository.namespace, Repository.name, Notification.id)
    )
    if repository == "/".join(OPERATOR_REPOSITORY):
        namespace, name = OPERATOR_REPOSITORY
        query = query.where(Repository.namespace == namespace, Repository.name == name)
    elif repository is not None:
        namespace, name = parse_repository_name(repository)
        query = query.where(Repository.id == get_repository(session, namespace, name).id)
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
        reset_failures(session, notification)
        if done % batch_size == 0 or done == total:
            session.commit()
            if progress is not None:
                progress(done, total)
    return total
