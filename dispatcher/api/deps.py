"""Dependencies: the request's session, the caller, the repository and the notification.

Routes authorise by depending on :func:`repo_admin` (or :func:`events_writer`): 401 without a
valid token, 403 without the scope or a grant covering the path's repository, then (repo_admin)
404 when the repository is not registered. :func:`path_notification` answers GET's 404 for an
unknown uuid; :func:`notification_for_change` answers Quay's 400 for delete, reset and test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from dispatcher.bounds import is_uuid
from dispatcher.db import request_session
from dispatcher.errors import NotFoundError, NotificationNotFoundError
from dispatcher.models import Notification, Repository
from dispatcher.runtime import Runtime
from dispatcher.service import notifications, repositories, tokens
from dispatcher.vocabulary import Scope


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    yield from request_session(runtime.sessions)


SessionDep = Annotated[Session, Depends(get_session)]


# Declares the bearer scheme in OpenAPI (the docs' "Authorize" button). It never answers by
# itself (auto_error=False): a missing or malformed header reaches tokens.authenticate as None,
# which answers Quay's 401.
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="A token from `dispatcher tokens create`, sent as `Authorization: Bearer <token>`.",
)


def get_principal(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    session: SessionDep,
) -> tokens.Principal:
    return tokens.authenticate(session, credentials.credentials if credentials else None)


PrincipalDep = Annotated[tokens.Principal, Depends(get_principal)]


def repo_admin(
    namespace: str, repository: str, principal: PrincipalDep, session: SessionDep
) -> Repository:
    """The path's repository, for a caller with ``repo:admin`` on it (404 if unregistered)."""
    tokens.authorize(principal, Scope.REPO_ADMIN, namespace, repository)
    return repositories.get_repository(session, namespace, repository)


def events_writer(namespace: str, repository: str, principal: PrincipalDep) -> str:
    """``namespace/repository`` for a caller with ``events:write`` on it. The repository need
    not exist yet: emitting an event registers it."""
    tokens.authorize(principal, Scope.EVENTS_WRITE, namespace, repository)
    return f"{namespace}/{repository}"


AdminRepositoryDep = Annotated[Repository, Depends(repo_admin)]
EventsRepositoryNameDep = Annotated[str, Depends(events_writer)]


def _find(session: Session, repository: Repository, uuid: str) -> Notification | None:
    return notifications.find_notification(session, repository, uuid) if is_uuid(uuid) else None


def path_notification(
    uuid: str, repository: AdminRepositoryDep, session: SessionDep
) -> Notification:
    notification = _find(session, repository, uuid)
    if notification is None:
        raise NotFoundError()
    return notification


def notification_for_change(
    uuid: str, repository: AdminRepositoryDep, session: SessionDep
) -> Notification:
    notification = _find(session, repository, uuid)
    if notification is None:
        raise NotificationNotFoundError(repository.namespace, repository.name, uuid)
    return notification


NotificationDep = Annotated[Notification, Depends(path_notification)]
ChangeNotificationDep = Annotated[Notification, Depends(notification_for_change)]
