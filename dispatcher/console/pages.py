"""The console's pages (GET): repositories, a repository's notifications with the create
form, a notification's deliveries, one delivery, and the live fragments the pages poll while
a delivery is in flight. Each authorises through :mod:`dispatcher.console.deps` and reads
through a use case; none changes anything.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from dispatcher.console.deps import (
    PageNotificationDep,
    PageRepositoryDep,
    PagesDep,
    PrincipalDep,
    RuntimeDep,
    SessionDep,
)
from dispatcher.console.forms import CreateForm, event_field_groups, method_field_groups
from dispatcher.events import EVENTS
from dispatcher.models import Notification, Repository
from dispatcher.runtime import Runtime
from dispatcher.senders.registry import METHODS
from dispatcher.service import delivery_log, overview
from dispatcher.service.preview import request_preview
from dispatcher.vocabulary import DeliveryStatus

router = APIRouter()

NOTIFICATION = "/repository/{namespace}/{repository}/notification/{uuid}"
DELIVERY = NOTIFICATION + "/deliveries/{delivery_id}"
PageNumber = Annotated[int, Query(ge=1, le=1_000_000)]
# A cursor the delivery log handed out is ~80 characters; refuse junk before decoding it.
Cursor = Annotated[str | None, Query(max_length=512)]
Status = Annotated[str | None, Query(max_length=32)]


@router.get("/")
def repositories(
    request: Request,
    pages: PagesDep,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    page: PageNumber = 1,
) -> Response:
    size = runtime.settings.console_page_size
    found = overview.administered_repositories(
        session, principal, limit=size, offset=(page - 1) * size
    )
    return pages.page(request, "repositories.html", listing=found, page_number=page)


@router.get("/sign-in")
def sign_in_page(request: Request, pages: PagesDep) -> Response:
    return pages.page(request, "sign_in.html", error="", next_path="")


@router.get("/repository/{namespace}/{repository}")
def repository_page(
    request: Request, pages: PagesDep, repository: PageRepositoryDep, session: SessionDep
) -> Response:
    return pages.page(
        request, "repository.html", **repository_context(session, repository, CreateForm())
    )


def repository_context(
    session: Session, repository: Repository, form: CreateForm
) -> dict[str, Any]:
    """What ``repository.html`` shows: the notifications and the create form."""
    return {
        "repository": repository,
        "summaries": overview.notification_summaries(session, repository),
        "form": form,
        "events": [(name, event.title) for name, event in EVENTS.items()],
        "methods": METHODS,
        "event_groups": event_field_groups(),
        "method_groups": method_field_groups(),
    }


@router.get(NOTIFICATION)
def notification_page(
    request: Request,
    pages: PagesDep,
    repository: PageRepositoryDep,
    notification: PageNotificationDep,
    session: SessionDep,
    runtime: RuntimeDep,
    status: Status = None,
    cursor: Cursor = None,
) -> Response:
    context = _notification_context(session, runtime, repository, notification, status, cursor)
    return pages.page(request, "notification.html", **context)


@router.get(NOTIFICATION + "/live")
def notification_live(
    request: Request,
    pages: PagesDep,
    repository: PageRepositoryDep,
    notification: PageNotificationDep,
    session: SessionDep,
    runtime: RuntimeDep,
    status: Status = None,
    cursor: Cursor = None,
) -> Response:
    context = _notification_context(session, runtime, repository, notification, status, cursor)
    return pages.page(request, "_notification_live.html", **context)


def _notification_context(
    session: Session,
    runtime: Runtime,
    repository: Repository,
    notification: Notification,
    status: str | None,
    cursor: str | None,
) -> dict[str, Any]:
    listing = delivery_log.list_deliveries(
        session, notification, runtime.settings, status=status or None, cursor=cursor or None
    )
    (summary,) = overview.notification_summaries(session, repository, uuid=notification.uuid)
    query = {key: value for key, value in (("status", status), ("cursor", cursor)) if value}
    return {
        "repository": repository,
        "summary": summary,
        "listing": listing,
        "status_filter": status or "",
        "cursor": cursor or "",
        "query": query,
        "statuses": list(DeliveryStatus),
        "pending": any(item.status == DeliveryStatus.PENDING for item in listing.deliveries),
    }


@router.get(NOTIFICATION + "/delete")
def delete_page(
    request: Request,
    pages: PagesDep,
    repository: PageRepositoryDep,
    notification: PageNotificationDep,
    session: SessionDep,
) -> Response:
    (summary,) = overview.notification_summaries(session, repository, uuid=notification.uuid)
    return pages.page(request, "delete.html", repository=repository, summary=summary)


@router.get(DELIVERY)
def delivery_page(
    request: Request,
    pages: PagesDep,
    repository: PageRepositoryDep,
    notification: PageNotificationDep,
    session: SessionDep,
    runtime: RuntimeDep,
    delivery_id: str,
) -> Response:
    context = _delivery_context(session, runtime, repository, notification, delivery_id)
    return pages.page(request, "delivery.html", **context)


@router.get(DELIVERY + "/live")
def delivery_live(
    request: Request,
    pages: PagesDep,
    repository: PageRepositoryDep,
    notification: PageNotificationDep,
    session: SessionDep,
    runtime: RuntimeDep,
    delivery_id: str,
) -> Response:
    context = _delivery_context(session, runtime, repository, notification, delivery_id)
    return pages.page(request, "_delivery_live.html", **context)


def _delivery_context(
    session: Session,
    runtime: Runtime,
    repository: Repository,
    notification: Notification,
    delivery_id: str,
) -> dict[str, Any]:
    delivery = delivery_log.get_delivery(session, notification, delivery_id)
    return {
        "repository": repository,
        "notification": notification,
        "delivery": delivery,
        "preview": request_preview(delivery, notification, runtime.settings),
        "pending": delivery.status == DeliveryStatus.PENDING,
    }
