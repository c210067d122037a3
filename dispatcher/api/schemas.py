"""Request and response bodies of the notification API, in Quay's field names.

The create body is parsed by hand (not by FastAPI's validation) so that errors read like
Quay's JSON-schema messages (``'event' is a required property``) and answer 400, not 422.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from dispatcher.bounds import displayable, parse_json
from dispatcher.errors import InvalidRequestError
from dispatcher.events import EVENT_NAMES
from dispatcher.models import Notification
from dispatcher.service.notifications import TITLE_MAX


class NotificationCreateRequest(BaseModel):
    """Information for creating a notification on a repository (Quay's schema)."""

    event: str = Field(
        description=(
            "The event on which the notification will respond: one of "
            + ", ".join(f"`{name}`" for name in EVENT_NAMES)
            + " (the last two are dispatcher's failure notices)"
        )
    )
    method: str = Field(description="The method of notification (webhook, slack or email)")
    config: dict[str, Any] = Field(description="JSON config information for the method")
    eventConfig: dict[str, Any] = Field(
        description="JSON config information for the event; may be {}"
    )
    title: str | None = Field(
        default=None, max_length=TITLE_MAX, description="Human-readable title"
    )


class NotificationView(BaseModel):
    """A notification as Quay shows it."""

    uuid: str
    title: str | None
    event: str
    method: str
    config: dict[str, Any]
    event_config: dict[str, Any]
    number_of_failures: int

    @classmethod
    def of(cls, notification: Notification, max_depth: int) -> NotificationView:
        """The view of a stored notification. Values stored before the bounds of
        :mod:`dispatcher.bounds` existed are shown within ``max_depth`` levels, so that one
        such row cannot break a repository's list."""
        return cls(
            uuid=notification.uuid,
            title=displayable(notification.title, max_depth),
            event=notification.event,
            method=notification.method,
            config=displayable(notification.config or {}, max_depth),
            event_config=displayable(notification.event_config or {}, max_depth),
            number_of_failures=notification.number_of_failures,
        )


class NotificationList(BaseModel):
    notifications: list[NotificationView]


class Empty(BaseModel):
    """An empty JSON object, ``{}``."""


@dataclass(frozen=True)
class CreateRequest:
    event: str
    method: str
    config: dict[str, Any]
    event_config: dict[str, Any]
    title: str | None


_TYPES: dict[str, tuple[type, str]] = {
    "event": (str, "string"),
    "method": (str, "string"),
    "config": (dict, "object"),
    "eventConfig": (dict, "object"),
    "title": (str, "string"),
}
_REQUIRED = ("event", "method", "config", "eventConfig")


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_create_request(body: bytes) -> CreateRequest:
    """Parse and check the shape of a create body; InvalidRequestError with a Quay-style
    message if wrong. The values themselves are checked by ``service.create_notification``."""
    if not body.strip():
        raise InvalidRequestError("Missing JSON body")
    payload = parse_json(body, "Request body")
    if payload is None:
        raise InvalidRequestError("Missing JSON body")
    if not isinstance(payload, dict):
        raise InvalidRequestError(f"{_describe(payload)} is not of type 'object'")
    for name in _REQUIRED:
        if name not in payload:
            raise InvalidRequestError(f"'{name}' is a required property")
    for name, (kind, label) in _TYPES.items():
        if name in payload and not isinstance(payload[name], kind):
            raise InvalidRequestError(
                f"{_describe(payload[name])} is not of type '{label}' (field '{name}')"
            )
    return CreateRequest(
        event=payload["event"],
        method=payload["method"],
        config=payload["config"],
        event_config=payload["eventConfig"],
        title=payload.get("title"),
    )
