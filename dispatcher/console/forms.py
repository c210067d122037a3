"""Reading the console's forms, and the create form built from the catalogues.

Forms arrive as ``application/x-www-form-urlencoded``, their bodies already read and bounded
by the API app's :class:`~dispatcher.api.limits.BodyLimit`, and at most :data:`MAX_FIELDS`
fields. The create form has one group of inputs per ``eventConfig`` field (shared by
the events that declare it) and one group per method; the inputs of the chosen event and
method become ``eventConfig`` and ``config`` and go to ``service.create_notification``, the
API's own validation, whose errors are shown beside the field they name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from dispatcher.configfields import ConfigField
from dispatcher.errors import (
    InvalidFieldError,
    InvalidRequestError,
    UnknownEventError,
    UnknownMethodError,
)
from dispatcher.events import EVENTS, EventType
from dispatcher.senders.registry import METHODS, config_fields

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 64


async def read_form(request: Request) -> dict[str, str]:
    """The submitted fields (the first value of each name). InvalidRequestError for another
    content type, text that is not UTF-8 or too many fields."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        raise InvalidRequestError(f"Send the form as {FORM_TYPE}")
    body = await request.body()
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FIELDS,
            errors="strict",
        )
    except UnicodeDecodeError:
        raise InvalidRequestError("The form is not valid UTF-8") from None
    except ValueError:
        raise InvalidRequestError(f"A form has at most {MAX_FIELDS} fields") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


# -- the create form --------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFieldGroup:
    """One ``eventConfig`` field and the events that declare it."""

    field: ConfigField
    events: tuple[str, ...]

    @property
    def input_name(self) -> str:
        return event_input(self.field.name)


@dataclass(frozen=True)
class MethodFieldGroup:
    method: str
    fields: tuple[ConfigField, ...]

    def input_name(self, config_field: ConfigField) -> str:
        return method_input(self.method, config_field.name)


def event_input(name: str) -> str:
    return f"eventConfig.{name}"


def method_input(method: str, name: str) -> str:
    return f"config.{method}.{name}"


def event_field_groups(events: Mapping[str, EventType] = EVENTS) -> list[EventFieldGroup]:
    """Every ``eventConfig`` field of the catalogue once, with the events declaring it.
    ValueError if two events declare different fields under one name (one input each)."""
    groups: dict[str, tuple[ConfigField, list[str]]] = {}
    for event in events.values():
        for config_field in event.config_fields:
            known = groups.setdefault(config_field.name, (config_field, []))
            if known[0] != config_field:
                raise ValueError(f"eventConfig field '{config_field.name}' differs between events")
            known[1].append(event.name)
    return [EventFieldGroup(item, tuple(events)) for item, events in groups.values()]


def method_field_groups() -> list[MethodFieldGroup]:
    return [MethodFieldGroup(method, config_fields(method)) for method in METHODS]


@dataclass
class CreateForm:
    """What was typed (to fill the form again) and the error beside each input name
    (``""`` for an error that belongs to no single field)."""

    values: Mapping[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CreateRequest:
    event: str
    method: str
    title: str | None
    config: dict[str, Any]
    event_config: dict[str, Any]


def create_request(values: Mapping[str, str]) -> CreateRequest:
    """The create request a submitted form stands for: only the inputs of the chosen event
    and method are read; empty ones are left out."""
    event = values.get("event", "")
    method = values.get("method", "")
    title = values.get("title", "").strip() or None
    event_fields = EVENTS[event].config_fields if event in EVENTS else ()
    method_fields = config_fields(method) if method in METHODS else ()
    return CreateRequest(
        event=event,
        method=method,
        title=title,
        config=_values(method_fields, values, lambda name: method_input(method, name)),
        event_config=_values(event_fields, values, event_input),
    )


def _values(
    fields: tuple[ConfigField, ...], values: Mapping[str, str], input_name: Callable[[str], str]
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for config_field in fields:
        value = config_field.value_of(values.get(input_name(config_field.name), ""))
        if value is not None:
            found[config_field.name] = value
    return found


def error_input(error: InvalidRequestError, method: str) -> str:
    """The input name an error from ``create_notification`` belongs beside."""
    if isinstance(error, UnknownEventError):
        return "event"
    if isinstance(error, UnknownMethodError):
        return "method"
    if isinstance(error, InvalidFieldError):
        where, name = error.location
        if where == "config":
            return method_input(method, name)
        if where == "eventConfig":
            return event_input(name)
        return name
    return ""
