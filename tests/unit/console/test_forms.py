"""The create form's fields come from the catalogues and agree with their validation; a
submitted form becomes the create request the API would get."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dispatcher.config import Settings
from dispatcher.configfields import ConfigField
from dispatcher.console.forms import (
    create_request,
    error_input,
    event_field_groups,
    event_input,
    method_field_groups,
    method_input,
)
from dispatcher.errors import InvalidFieldError, UnknownEventError, UnknownMethodError
from dispatcher.events import EVENTS
from dispatcher.senders import registry

SETTINGS = Settings()
EVENTS_WITH_FIELDS = [name for name, event in EVENTS.items() if event.config_fields]
METHODS = list(registry.METHODS)


def examples(fields: tuple[ConfigField, ...]) -> dict[str, object]:
    return {field.name: field.value_of(field.example) for field in fields}


def test_every_event_and_method_is_in_the_form() -> None:
    grouped = {event for group in event_field_groups() for event in group.events}
    assert grouped == set(EVENTS_WITH_FIELDS)
    assert {"build_success", "vulnerability_found", "repo_image_expiry"} <= grouped
    assert [group.method for group in method_field_groups()] == METHODS


@pytest.mark.parametrize("event", EVENTS_WITH_FIELDS)
def test_event_field_examples_validate_and_missing_required_ones_are_named(event: str) -> None:
    event_type = EVENTS[event]
    event_type.validate_config(examples(event_type.config_fields), SETTINGS)
    for field in event_type.config_fields:
        if field.required:
            with pytest.raises(InvalidFieldError) as missing:
                event_type.validate_config({}, SETTINGS)
            assert missing.value.location == ("eventConfig", field.name)
        with pytest.raises(InvalidFieldError) as wrong:
            event_type.validate_config({field.name: "(not valid"}, SETTINGS)
        assert wrong.value.location == ("eventConfig", field.name)


@pytest.mark.parametrize("method", METHODS)
def test_method_field_examples_validate_and_errors_name_a_field_of_the_form(method: str) -> None:
    fields = registry.config_fields(method)
    assert registry.validate_config(method, examples(fields), SETTINGS)
    names = {field.name for field in fields}
    for field in fields:
        broken = {
            **examples(fields),
            field.name: "http://localhost/" if field.widget == "url" else "x",
        }
        if field.widget == "textarea":
            broken[field.name] = "{not json"
        with pytest.raises(InvalidFieldError) as wrong:
            registry.validate_config(method, broken, SETTINGS)
        assert wrong.value.location == ("config", field.name)
        if field.required:
            with pytest.raises(InvalidFieldError) as missing:
                registry.validate_config(method, {}, SETTINGS)
            assert missing.value.location[1] in names


def test_one_name_cannot_mean_two_fields() -> None:
    level = EVENTS["vulnerability_found"]
    other = replace(
        level, name="other_event", config_fields=(replace(level.config_fields[0], label="Other"),)
    )
    with pytest.raises(ValueError, match="level"):
        event_field_groups({"vulnerability_found": level, "other_event": other})


def test_a_form_becomes_the_request_of_its_event_and_method_only() -> None:
    form = {
        "event": "vulnerability_found",
        "method": "webhook",
        "title": "  scanner  ",
        event_input("level"): "2",
        event_input("days"): "7",
        event_input("ref-regex"): "refs/.*",
        method_input("webhook", "url"): "https://hooks.example.com/h",
        method_input("webhook", "template"): "",
        method_input("slack", "url"): "https://hooks.slack.com/services/T/B/C",
        "csrf": "x",
    }
    request = create_request(form)
    assert (request.event, request.method, request.title) == (
        "vulnerability_found",
        "webhook",
        "scanner",
    )
    assert request.event_config == {"level": 2}
    assert request.config == {"url": "https://hooks.example.com/h"}


def test_text_that_is_not_a_number_reaches_the_validator_as_text() -> None:
    request = create_request({"event": "repo_image_expiry", event_input("days"): "seven"})
    assert request.event_config == {"days": "seven"}
    assert create_request({"event": "nope", "method": "nope"}).config == {}


def test_errors_find_their_inputs() -> None:
    assert error_input(UnknownEventError("x"), "webhook") == "event"
    assert error_input(UnknownMethodError("x"), "webhook") == "method"
    url_error = InvalidFieldError("Missing webhook URL", location=("config", "url"))
    assert error_input(url_error, "webhook") == "config.webhook.url"
    level_error = InvalidFieldError("bad", location=("eventConfig", "level"))
    assert error_input(level_error, "slack") == "eventConfig.level"


def test_value_of() -> None:
    number = ConfigField(name="n", label="N", integer=True)
    assert number.value_of(" 12 ") == 12
    assert number.value_of("1e3") == "1e3"
    assert number.value_of("9" * 12) == "9" * 12
    assert number.value_of("   ") is None
    assert ConfigField(name="t", label="T").value_of("12") == "12"
