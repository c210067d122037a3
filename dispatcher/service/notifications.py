"""Use cases on repositories and notifications: what the API and the CLI call.

Functions take an open session and leave committing to the caller, except those that ring the
doorbell: they commit first, then ring, so a worker never looks for a row not yet visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from dispatcher import bounds
from dispatcher.bounds import is_valid_name
from dispatcher.config import Settings
from dispatcher.errors import InvalidFieldError, InvalidRequestError, NotFoundError, echo
from dispatcher.events import event_data, get_event
from dispatcher.models import AuthorizedEmail, Delivery, Event, Notification, Repository, utcnow
from dispatcher.pipeline import outbox
from dispatcher.pipeline.doorbell import Doorbell
from dispatcher.service.authorized_emails import require_authorized
from dispatcher.vocabulary import DeliveryKind

TITLE_MAX = 255


def parse_repository_name(full_name: str) -> tuple[str, str]:
    """Split ``namespace/name``; both parts as Quay allows (lower-case, digits, ``._-``)."""
    namespace, slash, name = full_name.partition("/")
    if not slash or not is_valid_name(namespace, name):
        raise InvalidRequestError(
            f"Invalid repository '{echo(full_name)}': use namespace/name, lower-case "
            "letters, digits, '.', '_' and '-' (a namespace has at least 2 characters)"
        )
    return namespace, name


# -- repositories -----------------------------------------------------------------------------


def find_repository(session: Session, namespace: str, name: str) -> Repository | None:
    return session.scalars(
        select(Repository).where(Repository.namespace == namespace, Repository.name == name)
    ).one_or_none()


def get_repository(session: Session, namespace: str, name: str) -> Repository:
    """The registered repository ``namespace/name``; NotFoundError if there is none (a name
    Quay would not allow is not looked up)."""
    repository = (
        find_repository(session, namespace, name) if is_valid_name(namespace, name) else None
    )
    if repository is None:
        raise NotFoundError(f"Repository {echo(namespace)}/{echo(name)} not found")
    return repository


def ensure_repository(session: Session, namespace: str, name: str) -> Repository:
    """The repository ``namespace/name``, registered now if it was not yet."""
    repository = find_repository(session, namespace, name)
    if repository is None:
        repository = Repository(namespace=namespace, name=name)
        session.add(repository)
        session.flush()
    return repository


def add_repository(session: Session, full_name: str) -> tuple[Repository, bool]:
    """Register a repository; returns it and whether it was new."""
    namespace, name = parse_repository_name(full_name)
    existing = find_repository(session, namespace, name)
    if existing is not None:
        return existing, False
    return ensure_repository(session, namespace, name), True


def list_repositories(session: Session) -> Sequence[Repository]:
    return session.scalars(select(Repository).order_by(Repository.namespace, Repository.name)).all()


def remove_repository(session: Session, full_name: str) -> int:
    """Delete a repository with its notifications, events, deliveries and authorized e-mail
    addresses.

    Returns how many notifications went with it."""
    namespace, name = parse_repository_name(full_name)
    repository = get_repository(session, namespace, name)
    count = len(repository.notifications)
    # Children first, so the result does not depend on the backend enforcing ON DELETE CASCADE.
    notification_ids = select(Notification.id).where(Notification.repository_id == repository.id)
    session.execute(delete(Delivery).where(Delivery.notification_id.in_(notification_ids)))
    session.execute(delete(Event).where(Event.repository_id == repository.id))
    session.execute(delete(Notification).where(Notification.repository_id == repository.id))
    session.execute(delete(AuthorizedEmail).where(AuthorizedEmail.repository_id == repository.id))
    session.execute(delete(Repository).where(Repository.id == repository.id))
    session.expunge(repository)
    return count


# -- notifications ----------------------------------------------------------------------------


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
    from dispatcher import senders

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
    stored_config = senders.validate_config(method, config, settings)
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
    session.execute(delete(Delivery).where(Delivery.notification_id == notification.id))
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
