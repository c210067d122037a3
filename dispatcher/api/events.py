"""The producer endpoint: ``POST /api/v1/repository/{ns}/{repo}/events`` (scope
``events:write``), for producers not written in Python. Emitting registers the repository."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from dispatcher.api.deps import EventsRepositoryNameDep, RuntimeDep
from dispatcher.api.problems import PROBLEM_RESPONSES
from dispatcher.bounds import parse_json
from dispatcher.errors import InvalidRequestError
from dispatcher.service import emit

router = APIRouter(prefix="/api/v1/repository/{namespace}/{repository}", tags=["events"])
_SHAPE = (
    'Body must be a JSON object {"event": "<event>", "data": {...}, "performer": {...} or null}'
)


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
    responses={
        **PROBLEM_RESPONSES,
        200: {
            "model": EventAccepted,
            "description": "Reported before with this Idempotency-Key: nothing new was stored",
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": EventRequest.model_json_schema()}},
        }
    },
)
async def emit_event(
    request: Request,
    response: Response,
    full_name: EventsRepositoryNameDep,
    runtime: RuntimeDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            description="Send the same key again (a retry after an error) within "
            "DISPATCHER_IDEMPOTENCY_WINDOW and nothing new is stored: the answer is the "
            "first one's, with 200 instead of 202.",
        ),
    ] = None,
) -> EventAccepted:
    # The body is complete and bounded by now (dispatcher.api.limits); its values are checked
    # by the producer, as for every other producer.
    try:
        payload = parse_json(await request.body() or b"null", "the body")
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"{_SHAPE}; {exc.message}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
        raise InvalidRequestError(_SHAPE)
    data = payload.get("data", {})
    performer = payload.get("performer")
    if not isinstance(data, dict) or not isinstance(performer, dict | None):
        raise InvalidRequestError(_SHAPE)
    result = await run_in_threadpool(
        partial(emit.emit, idempotency_key=idempotency_key),
        runtime.sessions,
        runtime.settings,
        runtime.doorbell,
        full_name,
        payload["event"],
        data,
        performer,
    )
    if result.replayed:
        response.status_code = 200
    return EventAccepted(event_id=result.event_id, deliveries=result.deliveries)
