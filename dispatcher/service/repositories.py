"""Use cases on repositories: register, find, list and remove them, and the rules of their
names (Quay's, checked as whole strings by :func:`dispatcher.bounds.is_valid_name`).

Producers register a repository by emitting its first event; operators with
``dispatcher repos add``. Removing one removes its notifications, events, deliveries and
authorized e-mail addresses.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dispatcher.bounds import is_valid_name
from dispatcher.errors import InvalidRequestError, NotFoundError, echo
from dispatcher.models import AuthorizedEmail, Event, IdempotencyKey, Notification, Repository
from dispatcher.pipeline import outbox


def parse_repository_name(full_name: str) -> tuple[str, str]:
    """Split ``namespace/name``; both parts as Quay allows (lower-case, digits, ``._-``)."""
    namespace, slash, name = full_name.partition("/")
    if not slash or not is_valid_name(namespace, name):
        raise InvalidRequestError(
            f"Invalid repository '{echo(full_name)}': use namespace/name, lower-case "
            "letters, digits, '.', '_' and '-' (a namespace has at least 2 characters)"
        )
    return namespace, name


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
    outbox.discard_deliveries(session, notification_ids)
    session.execute(delete(Event).where(Event.repository_id == repository.id))
    session.execute(delete(Notification).where(Notification.repository_id == repository.id))
    session.execute(delete(AuthorizedEmail).where(AuthorizedEmail.repository_id == repository.id))
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.repository_id == repository.id))
    session.execute(delete(Repository).where(Repository.id == repository.id))
    session.expunge(repository)
    return count
