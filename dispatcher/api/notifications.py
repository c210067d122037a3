"""The six repository-notification endpoints of Quay's API.

Each path answers with and without a trailing slash (no redirect). Authorisation, the
repository and the notification lookups are dependencies (see ``deps``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from dispatcher.api.deps import (
    AdminRepositoryDep,
    ChangeNotificationDep,
    NotificationDep,
    RuntimeDep,
    SessionDep,
)
from dispatcher.api.problems import PROBLEM_RESPONSES, Problem
from dispatcher.api.schemas import (
    CreateRequest,
    Empty,
    NotificationCreateRequest,
    NotificationList,
    NotificationView,
    parse_create_request,
)
from dispatcher.config import Settings
from dispatcher.models import Repository
from dispatcher.service import notifications

router = APIRouter(prefix="/api/v1/repository/{namespace}/{repository}", tags=["notifications"])

COLLECTION = "/notification/"
ITEM = "/notification/{uuid}"
_CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": NotificationCreateRequest.model_json_schema()}},
    }
}
_REQUEST_TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"model": Problem, "description": "Body larger than the limit"}
}


@router.get(
    COLLECTION,
    operation_id="listRepoNotifications",
    summary="List the notifications of a repository",
    responses=PROBLEM_RESPONSES,
)
@router.get(COLLECTION.rstrip("/"), include_in_schema=False)
def list_notifications(
    repository: AdminRepositoryDep, session: SessionDep, runtime: RuntimeDep
) -> NotificationList:
    items = notifications.list_notifications(session, repository)
    depth = runtime.settings.max_json_depth
    return NotificationList(notifications=[NotificationView.of(item, depth) for item in items])


@router.post(
    COLLECTION,
    operation_id="createRepoNotification",
    summary="Create a notification on a repository",
    status_code=201,
    responses={**PROBLEM_RESPONSES, **_REQUEST_TOO_LARGE},
    openapi_extra=_CREATE_BODY,
)
@router.post(COLLECTION.rstrip("/"), include_in_schema=False, status_code=201)
async def create_notification(
    request: Request, repository: AdminRepositoryDep, session: SessionDep, runtime: RuntimeDep
) -> NotificationView:
    # The body is complete and bounded by now (dispatcher.api.limits).
    create = parse_create_request(await request.body())
    # The database work is blocking: keep it off the event loop.
    return await run_in_threadpool(_store, session, repository, create, runtime.settings)


def _store(
    session: Session, repository: Repository, create: CreateRequest, settings: Settings
) -> NotificationView:
    notification = notifications.create_notification(
        session,
        repository,
        event=create.event,
        method=create.method,
        config=create.config,
        event_config=create.event_config,
        title=create.title,
        settings=settings,
    )
    session.commit()
    return NotificationView.of(notification, settings.max_json_depth)


@router.get(
    ITEM,
    operation_id="getRepoNotification",
    summary="Get one notification",
    responses=PROBLEM_RESPONSES,
)
def get_notification(notification: NotificationDep, runtime: RuntimeDep) -> NotificationView:
    return NotificationView.of(notification, runtime.settings.max_json_depth)


@router.delete(
    ITEM,
    operation_id="deleteRepoNotification",
    summary="Delete a notification",
    status_code=204,
    response_class=Response,
    responses=PROBLEM_RESPONSES,
)
def delete_notification(notification: ChangeNotificationDep, session: SessionDep) -> Response:
    notifications.delete_notification(session, notification)
    session.commit()
    return Response(status_code=204)


@router.post(
    ITEM,
    operation_id="resetRepositoryNotificationFailures",
    summary="Reset the failure counter of a notification to 0 (re-enables it)",
    status_code=204,
    response_class=Response,
    responses=PROBLEM_RESPONSES,
)
def reset_failures(notification: ChangeNotificationDep, session: SessionDep) -> Response:
    notifications.reset_failures(session, notification)
    session.commit()
    return Response(status_code=204)


@router.post(
    ITEM + "/test",
    operation_id="testRepoNotification",
    summary="Queue a delivery of the event's sample data",
    status_code=201,
    responses=PROBLEM_RESPONSES,
)
@router.post(ITEM + "/test/", include_in_schema=False, status_code=201)
def test_notification(
    notification: ChangeNotificationDep, session: SessionDep, runtime: RuntimeDep
) -> Empty:
    notifications.queue_test(session, notification, runtime.settings, runtime.doorbell)
    return Empty()


__all__ = ["NotificationCreateRequest", "router"]
