"""Read-only overviews for people watching deliveries: the repositories a token administers
with their notification counts, and each notification with its state and last delivery.

What the console's lists show. Authorisation is the caller's (``tokens.authorize`` per
repository); :func:`administered_repositories` applies a principal's grants itself, exactly as
:func:`dispatcher.service.tokens.grant_covers` reads them, because it lists many repositories at
once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import ColumnElement, and_, case, false, func, or_, select, true
from sqlalchemy.orm import Session

from dispatcher.errors import PermissionDeniedError
from dispatcher.models import Delivery, Notification, Repository
from dispatcher.pipeline.notices import OPERATOR_REPOSITORY
from dispatcher.senders.registry import describe_target
from dispatcher.service.tokens import Principal
from dispatcher.vocabulary import Scope

ADMIN_SCOPE = Scope.REPO_ADMIN
State = Literal["ok", "failing", "disabled"]


@dataclass(frozen=True)
class RepositorySummary:
    """A repository with how many notifications it has, are failing, are disabled."""

    namespace: str
    name: str
    notifications: int
    failing: int
    disabled: int

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class RepositoryPage:
    repositories: Sequence[RepositorySummary]
    more: bool


@dataclass(frozen=True)
class NotificationSummary:
    """A notification with its masked target, its state and its newest delivery's outcome
    (``last_status`` None when it never had one; ``last_at`` when that delivery ended, or
    was created while it is still pending)."""

    notification: Notification
    target: str
    state: State
    last_status: str | None
    last_at: datetime | None


def notification_state(notification: Notification) -> State:
    """``disabled`` by the failure counter, ``failing`` with failures counted, else ``ok``."""
    if notification.disabled_at is not None:
        return "disabled"
    return "failing" if notification.number_of_failures > 0 else "ok"


def grants_clause(grants: Sequence[str]) -> ColumnElement[bool]:
    """A condition on :class:`Repository` true for the repositories ``grants`` cover
    (``ns/repo``, ``ns/*``, ``*``; grants are validated when a token is made)."""
    if "*" in grants:
        return true()
    clauses: list[ColumnElement[bool]] = []
    for grant in grants:
        namespace, _, name = grant.partition("/")
        if name == "*":
            clauses.append(Repository.namespace == namespace)
        else:
            clauses.append(and_(Repository.namespace == namespace, Repository.name == name))
    return or_(*clauses) if clauses else false()


def administered_repositories(
    session: Session, principal: Principal, *, limit: int, offset: int = 0
) -> RepositoryPage:
    """The registered repositories ``principal`` administers, those with disabled then
    failing notifications first, then by name. PermissionDeniedError without ``repo:admin``
    (as the API answers 403 for every repository then)."""
    if ADMIN_SCOPE not in principal.scopes:
        raise PermissionDeniedError()
    failing = func.count(
        case((and_(Notification.number_of_failures > 0, Notification.disabled_at.is_(None)), 1))
    )
    disabled = func.count(Notification.disabled_at)
    rows = session.execute(
        select(
            Repository.namespace, Repository.name, func.count(Notification.id), failing, disabled
        )
        .outerjoin(Notification, Notification.repository_id == Repository.id)
        .where(grants_clause(principal.grants))
        # the operator's notice targets: no page or API call serves their repository
        .where(Repository.namespace != OPERATOR_REPOSITORY[0])
        .group_by(Repository.id, Repository.namespace, Repository.name)
        .order_by(disabled.desc(), failing.desc(), Repository.namespace, Repository.name)
        .limit(limit + 1)
        .offset(offset)
    ).all()
    summaries = [RepositorySummary(row[0], row[1], row[2], row[3], row[4]) for row in rows]
    return RepositoryPage(repositories=summaries[:limit], more=len(summaries) > limit)


def notification_summaries(
    session: Session, repository: Repository, *, uuid: str | None = None
) -> list[NotificationSummary]:
    """The repository's notifications (or the one ``uuid``), disabled then failing first,
    then in creation order, each with its newest delivery found through the
    ``(notification_id, created_at)`` index."""
    newest = (
        select(Delivery.id)
        .where(Delivery.notification_id == Notification.id)
        .order_by(Delivery.created_at.desc(), Delivery.id.desc())
        .limit(1)
        .correlate(Notification)
        .scalar_subquery()
    )
    query = (
        select(Notification, Delivery.status, Delivery.finished_at, Delivery.created_at)
        .outerjoin(Delivery, Delivery.id == newest)
        .where(Notification.repository_id == repository.id)
        .order_by(Notification.id)
    )
    if uuid is not None:
        query = query.where(Notification.uuid == uuid)
    summaries = [
        NotificationSummary(
            notification=notification,
            target=describe_target(notification.method, notification.config or {}),
            state=notification_state(notification),
            last_status=status,
            last_at=finished_at or created_at,
        )
        for notification, status, finished_at, created_at in session.execute(query).all()
    ]
    rank = {"disabled": 0, "failing": 1, "ok": 2}
    return sorted(summaries, key=lambda summary: rank[summary.state])
