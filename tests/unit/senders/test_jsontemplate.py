"""Quay's JSON webhook templates: the examples of reference §4.7 and Quay's own tests."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from dispatcher.config import Settings
from dispatcher.senders.jsontemplate import JSONTemplate, JSONTemplateError, validate_template

LIMITS = Settings()
DEPTH, CHARS = LIMITS.max_json_depth, LIMITS.max_expression_chars

DATA = {
    "thing": 1234,
    "text": "beans",
    "first": [1, 2],
    "nested": {"second": {"third": "deep"}},
    "tags": ["latest", "prod", "foo"],
    "one": ["x"],
    "flag": True,
    "empty": [],
}


def apply(template: Any) -> Any:
    return JSONTemplate(json.dumps(template), max_depth=DEPTH, max_chars=CHARS).apply(DATA)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ({"hello": "${thing}"}, {"hello": 1234}),
        ({"hello": "cool-${text}"}, {"hello": "cool-beans"}),
        ({"hello": "${first.doesnotexist.third}"}, {"hello": None}),
        ({"hello": "${first[2]}"}, {"hello": None}),
        ({"hello": "hey-${first[2]}"}, {"hello": "hey-(none)"}),
        (["${first[1]}", "${first[0]}"], [2, 1]),
        ({"hello": "${nested.second}"}, {"hello": {"third": "deep"}}),
        ({"hello": "${nested.second.third}"}, {"hello": "deep"}),
        ({"hello": "${tags[*]}"}, {"hello": ["latest", "prod", "foo"]}),
        ({"hello": "${tags}"}, {"hello": ["latest", "prod", "foo"]}),
        ({"hello": "tags: ${tags[*]}"}, {"hello": "tags: latest,prod,foo"}),
        ({"hello": "tags: ${tags}"}, {"hello": "tags: latest,prod,foo"}),
        ({"hello": "one: ${one}"}, {"hello": "one: ['x']"}),
        ({"hello": "flag: ${flag}"}, {"hello": "flag: True"}),
        ({"hello": "${thing} and ${text}"}, {"hello": "1234 and beans"}),
        (
            {"${text}": "key", "n": 5, "b": False, "z": None},
            {"beans": "key", "n": 5, "b": False, "z": None},
        ),
        ({"${missing}": 1}, {"(none)": 1}),
        ("${text}", "beans"),
        (42, 42),
        ({"deep": [{"x": ["${first[0]}"]}]}, {"deep": [{"x": [1]}]}),
    ],
)
def test_apply(template: Any, expected: Any) -> None:
    assert apply(template) == expected


def test_no_placeholders_copies_the_template() -> None:
    template = {"a": [1, "two", {"three": 3.0}], "b": "plain $ text {braces}"}
    assert apply(template) == template


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "Could not parse template: "),
        ('{"a": "${}"}', "Empty expression found"),
        ('{"a": "x-${  }"}', "Empty expression found"),
        ('{"${}": 1}', "Empty expression found"),
        ('{"a": "${foo..}"}', "For expression `foo..`: "),
        ('{"a": "${[[}"}', "For expression `[[`: "),
    ],
)
def test_invalid_templates_are_rejected_with_quays_messages(text: str, message: str) -> None:
    with pytest.raises(JSONTemplateError) as caught:
        validate_template(text, DEPTH, CHARS)
    assert str(caught.value).startswith(message)


def test_validation_applies_to_empty_data() -> None:
    validate_template('{"repo": "${repository}", "tags": "${updated_tags[*]}"}', DEPTH, CHARS)


def test_a_template_of_unclosed_placeholders_is_scanned_in_linear_time() -> None:
    started = time.perf_counter()
    text = json.dumps({"x": "${" * 15_000})
    JSONTemplate(text, max_depth=DEPTH, max_chars=CHARS).apply(DATA)
    assert time.perf_counter() - started < 0.5
