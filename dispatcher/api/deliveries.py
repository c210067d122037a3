"""The delivery log of one notification (ours, beyond Quay): recent deliveries with each
attempt, one delivery, and redelivering one.

Same authorisation as the notification endpoints; an unknown notification or a delivery id of
another notification is 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from dispatcher.api.deps import NotificationDep, RuntimeDep, SessionDep
from dispatcher.api.problems import PROBLEM_RESPONSES
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
