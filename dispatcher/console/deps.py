"""The console's dependencies: the request's session, the visitor behind the cookie, the
caller (401 unless the cookie's bearer token is valid now), the checked form of an action
(CSRF), and the repository and notification of a path, authorised exactly as the API's
:mod:`dispatcher.api.deps` does: ``tokens.authenticate``, then ``tokens.authorize`` with
``repo:admin`` on the path's repository, then 404 for an unregistered repository.

Pages answer 404 for an unknown notification uuid, actions Quay's 400, as the API does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from dispatcher.console.forms import read_form
from dispatcher.console.render import Pages, visitor_of
from dispatcher.console.session import Visitor
from dispatcher.db import request_session
from dispatcher.errors import AuthError, NotFoundError, NotificationNotFoundError
from dispatcher.models import Notification, Repository
from dispatcher.runtime import Runtime
from dispatcher.service import notifications, repositories, tokens
from dispatcher.vocabulary import Scope


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_pages(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
PagesDep = Annotated[Pages, Depends(get_pages)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    yield from request_session(runtime.sessions)


SessionDep = Annotated[Session, Depends(get_session)]


def get_visitor(request: Request, pages: PagesDep) -> Visitor:
    return visitor_of(request, pages.codec)


VisitorDep = Annotated[Visitor, Depends(get_visitor)]


def get_principal(visitor: VisitorDep, session: SessionDep) -> tokens.Principal:
    """The signed-in caller. AuthError (401) without a token, or when the token is unknown,
    expired or revoked now; the token is then dropped from the cookie."""
    try:
        return tokens.authenticate(session, visitor.token)
    except AuthError:
        visitor.forget_token()
        raise


PrincipalDep = Annotated[tokens.Principal, Depends(get_principal)]


async def get_form(request: Request) -> dict[str, str]:
    return await read_form(request)


FormDep = Annotated[dict[str, str], Depends(get_form)]


@dataclass(frozen=True)
class Action:
    """A signed-in caller whose form carried the session's CSRF token."""

    principal: tokens.Principal
    form: dict[str, str]


def get_action(principal: PrincipalDep, visitor: VisitorDep, form: FormDep) -> Action:
    visitor.check_csrf(form.get("csrf"))
    return Action(principal, form)


ActionDep = Annotated[Action, Depends(get_action)]


def administered(
    principal: tokens.Principal, session: Session, namespace: str, repository: str
) -> Repository:
    tokens.authorize(principal, Scope.REPO_ADMIN, namespace, repository)
    return repositories.get_repository(session, namespace, repository)


def page_repository(
    namespace: str, repository: str, principal: PrincipalDep, session: SessionDep
) -> Repository:
    return administered(principal, session, namespace, repository)


def action_repository(
    namespace: str, repository: str, action: ActionDep, session: SessionDep
) -> Repository:
    return administered(action.principal, session, namespace, repository)


PageRepositoryDep = Annotated[Repository, Depends(page_repository)]
ActionRepositoryDep = Annotated[Repository, Depends(action_repository)]


def page_notification(
    uuid: str, repository: PageRepositoryDep, session: SessionDep
) -> Notification:
    notification = notifications.find_notification(session, repository, uuid)
    if notification is None:
        raise NotFoundError()
    return notification


def action_notification(
    uuid: str, repository: ActionRepositoryDep, session: SessionDep
) -> Notification:
    notification = notifications.find_notification(session, repository, uuid)
    if notification is None:
        raise NotificationNotFoundError(repository.namespace, repository.name, uuid)
    return notification


def redeliver_notification(
    uuid: str, repository: ActionRepositoryDep, session: SessionDep
) -> Notification:
    """Redelivery is a delivery-log route: an unknown uuid is 404 there, as in the API."""
    notification = notifications.find_notification(session, repository, uuid)
    if notification is None:
        raise NotFoundError()
    return notification


PageNotificationDep = Annotated[Notification, Depends(page_notification)]
ActionNotificationDep = Annotated[Notification, Depends(action_notification)]
RedeliverNotificationDep = Annotated[Notification, Depends(redeliver_notification)]
