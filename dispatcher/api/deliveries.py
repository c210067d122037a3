"""The delivery log of one notification (ours, beyond Quay): recent deliveries with each
attempt, one delivery, redelivering one, and recovering those that failed or were skipped in
a window of time.

Same authorisation as the notification endpoints; an unknown notification or a delivery id of
another notification is 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from dispatcher.api.deps import NotificationDep, RuntimeDep, SessionDep
from dispatcher.api.problems import PROBLEM_RESPONSES
from dispatcher.bounds import parse_json
from dispatcher.errors import InvalidRequestError, echo
from dispatcher.service import delivery_log

router = APIRouter(
    prefix="/api/v1/repository/{namespace}/{repository}/notification/{uuid}/deliveries",
    tags=["delivery log"],
)


class AttemptView(BaseModel):
    time: str
    status_code: int | None
    latency_ms: float
    error: str | None
    response_excerpt: str | None


class DeliveryView(BaseModel):
    id: str
    event: str
    is_test: bool
    status: str
    attempts: list[AttemptView]
    created: str
    finished: str | None

    @classmethod
    def of(cls, view: dict[str, Any]) -> DeliveryView:
        return cls.model_validate(view)


class DeliveryList(BaseModel):
    deliveries: list[DeliveryView]
    next_cursor: str | None


class RecoverRequest(BaseModel):
    """The window of a recovery: deliveries that ended in it, from ``since`` to ``until``."""

    since: str = Field(
        description="ISO-8601 time, e.g. 2026-12-01T08:00:00Z (UTC when it has no offset)"
    )
    until: str | None = Field(
        default=None,
        description="ISO-8601 time, not included; now by default. At most "
        "DISPATCHER_DELIVERY_RETENTION after `since`",
    )


class Recovered(BaseModel):
    recovered: int = Field(description="How many deliveries were queued again")
    delivery_ids: list[str] = Field(description="The new deliveries, oldest original first")


_RECOVER_SHAPE = 'Body must be a JSON object {"since": "<ISO-8601 time>", "until": ... or null}'


@router.get(
    "",
    operation_id="listNotificationDeliveries",
    summary="Recent deliveries of a notification, newest first",
    description=(
        "Filter by `status` (pending, succeeded, failed, skipped). Page with `limit` and the "
        "`next_cursor` of the previous page; `next_cursor` is null on the last page."
    ),
    responses=PROBLEM_RESPONSES,
)
@router.get("/", include_in_schema=False)
def list_deliveries(
    notification: NotificationDep,
    session: SessionDep,
    runtime: RuntimeDep,
    status: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> DeliveryList:
    page = delivery_log.list_deliveries(
        session, notification, runtime.settings, status=status, limit=limit, cursor=cursor
    )
    return DeliveryList(
        deliveries=[DeliveryView.of(delivery_log.delivery_view(item)) for item in page.deliveries],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/{delivery_id}",
    operation_id="getNotificationDelivery",
    summary="One delivery of a notification, with its attempts",
    responses=PROBLEM_RESPONSES,
)
def get_delivery(
    delivery_id: str, notification: NotificationDep, session: SessionDep
) -> DeliveryView:
    delivery = delivery_log.get_delivery(session, notification, delivery_id)
    return DeliveryView.of(delivery_log.delivery_view(delivery))


@router.post(
    "/{delivery_id}/redeliver",
    operation_id="redeliverNotificationDelivery",
    summary="Send a delivery's event again, as a new delivery",
    description=(
        "Queues a new delivery (a new id, so a new `webhook-id`) of the same event. It is "
        "sent even while the notification is disabled, like a test."
    ),
    status_code=201,
    responses=PROBLEM_RESPONSES,
)
def redeliver(
    delivery_id: str, notification: NotificationDep, session: SessionDep, runtime: RuntimeDep
) -> DeliveryView:
    original = delivery_log.get_delivery(session, notification, delivery_id)
    delivery = delivery_log.redeliver(session, original, runtime.doorbell)
    return DeliveryView.of(delivery_log.delivery_view(delivery))


@router.post(
    "/recover",
    operation_id="recoverNotificationDeliveries",
    summary="Send the failed and skipped deliveries of a window again",
    description=(
        "Queues a new delivery of the event of each delivery that ended failed or skipped at "
        "`since` or later and before `until` (now by default), oldest first. A delivery is "
        "recovered once: the same call again recovers nothing new. Works while the "
        "notification is disabled, so an owner can catch up after fixing the receiver. The "
        "window is at most DISPATCHER_DELIVERY_RETENTION long."
    ),
    status_code=202,
    responses=PROBLEM_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": RecoverRequest.model_json_schema()}},
        }
    },
)
@router.post("/recover/", include_in_schema=False, status_code=202)
async def recover(
    request: Request, notification: NotificationDep, session: SessionDep, runtime: RuntimeDep
) -> Recovered:
    # The body is complete and bounded by now (dispatcher.api.limits).
    since, until = _recover_window(await request.body())
    recovery = await run_in_threadpool(
        delivery_log.recover,
        session,
        notification,
        runtime.settings,
        runtime.doorbell,
        since,
        until,
    )
    return Recovered(recovered=recovery.count, delivery_ids=list(recovery.delivery_ids))


def _recover_window(body: bytes) -> tuple[datetime, datetime | None]:
    """``since`` and ``until`` of a recover body; InvalidRequestError saying what is wrong."""
    try:
        payload = parse_json(body or b"null", "the body")
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"{_RECOVER_SHAPE}; {exc.message}") from None
    if not isinstance(payload, dict):
        raise InvalidRequestError(_RECOVER_SHAPE)
    for name in payload:
        if name not in RecoverRequest.model_fields:
            raise InvalidRequestError(f"Unknown property '{echo(name)}': {_RECOVER_SHAPE}")
    since = _time(payload, "since")
    if since is None:
        raise InvalidRequestError("'since' is a required property")
    return since, _time(payload, "until")


def _time(payload: dict[str, Any], name: str) -> datetime | None:
    """The time ``payload[name]`` names; None when it is missing or null."""
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequestError(f"'{name}' must be a string: an ISO-8601 time")
    return delivery_log.parse_time(value, name)
