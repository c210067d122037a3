"""The producer endpoint: ``POST /api/v1/repository/{ns}/{repo}/events`` (scope
``events:write``), for producers not written in Python. Emitting registers the repository."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from dispatcher import producer
from dispatcher.api.deps import EventsRepositoryNameDep, RuntimeDep
from dispatcher.api.notifications import read_body
from dispatcher.api.problems import PROBLEM_RESPONSES
from dispatcher.errors import InvalidRequestError

router = APIRouter(prefix="/api/v1/repository/{namespace}/{repository}", tags=["events"])


class EventRequest(BaseModel):
    event: str = Field(description="One of the eleven repository events, e.g. repo_push")
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="The producer's fields, merged over Quay's repository envelope",
    )
    performer: dict[str, Any] | None = Field(default=None, description="Who caused the event")


class EventAccepted(BaseModel):
    event_id: str
    deliveries: int


@router.post(
    "/events",
    status_code=202,
    operation_id="emitRepositoryEvent",
    summary="Report a repository event; its matching notifications are delivered",
    responses=PROBLEM_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": EventRequest.model_json_schema()}},
        }
    },
)
async def emit_event(
    request: Request, full_name: EventsRepositoryNameDep, runtime: RuntimeDep
) -> EventAccepted:
    body = await read_body(request, runtime.settings.max_request_bytes)
    try:
        payload = EventRequest.model_validate(json.loads(body or b"null"))
    except (ValueError, TypeError) as exc:
        raise InvalidRequestError(
            'Body must be a JSON object {"event": "<event>", "data": {...}}'
        ) from exc
    result = await run_in_threadpool(
        producer.emit,
        runtime.sessions,
        runtime.settings,
        runtime.doorbell,
        full_name,
        payload.event,
        payload.data,
        payload.performer,
    )
    return EventAccepted(event_id=result.event_id, deliveries=result.deliveries)
