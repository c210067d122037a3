"""The bounds on caller-supplied values, with generated hostile values (Hypothesis)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.bounds import (
    TOO_DEEP_MARKER,
    check_text,
    check_value,
    compile_pattern,
    displayable,
    is_uuid,
    parse_json,
)
from dispatcher.config import Settings
from dispatcher.errors import InvalidRequestError
from dispatcher.events import get_event

# Text as an attacker writes it: any code point, lone surrogates and NUL included.
HOSTILE_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | HOSTILE_TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(HOSTILE_TEXT, inner, max_size=4),
    max_leaves=40,
)


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(item) for item in value), default=0)
    return 0


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@given(VALUES, st.integers(min_value=1, max_value=6), st.integers(min_value=2, max_value=400))
@settings(max_examples=400, deadline=None)
def test_a_value_that_passes_can_be_stored_and_sent(value: Any, depth: int, size: int) -> None:
    """Whatever check_value lets through fits its bounds and encodes as UTF-8 JSON without NUL;
    whatever it refuses, it refuses with InvalidRequestError."""
    try:
        check_value(value, "field", max_depth=depth, max_bytes=size)
    except InvalidRequestError as exc:
        assert exc.message.startswith("field")
        return
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert len(text.encode("utf-8")) <= size
    assert "\\u0000" not in json.dumps(value)
    assert depth_of(value) <= depth


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"a": {"b": ["x", "\ud800"]}}, "f.a.b[1] is not valid Unicode"),
        ({"a": "x\x00"}, "f.a must not contain NUL"),
        ({"\x00": 1}, "f (a key) must not contain NUL"),
        (nested(5), "f[0][0][0][0] is nested deeper than 4 levels"),
        ({"n": float("nan")}, "f.n: number out of range"),
        ({"n": 2**70}, "f.n: integer out of range"),
        ({"n": object()}, "f.n: object is not a JSON value"),
        ({1: 2}, "f: object keys must be strings"),
        ({"s": "x" * 100}, "f is larger than 50 bytes"),
    ],
)
def test_the_message_says_where(value: Any, where: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        check_value(value, "f", max_depth=4, max_bytes=50)
    assert raised.value.message.startswith(where)


def test_the_limit_is_inclusive() -> None:
    check_value(nested(4), "f", max_depth=4, max_bytes=100)
    check_value("x" * 48, "f", max_depth=4, max_bytes=50)  # 50 bytes with its quotes
    with pytest.raises(InvalidRequestError):
        check_value("x" * 49, "f", max_depth=4, max_bytes=50)


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
@settings(max_examples=300, deadline=None)
def test_parsing_any_bytes_gives_a_value_or_a_400(raw: bytes) -> None:
    try:
        parse_json(raw, "body")
    except InvalidRequestError as exc:
        assert exc.message.startswith("body is not valid JSON")


@pytest.mark.parametrize(
    "raw", [b"NaN", b"[Infinity]", b"-Infinity", b"1e999", b"[" * 100_000 + b"]" * 100_000]
)
def test_what_json_allows_but_no_database_stores_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidRequestError):
        parse_json(raw, "body")


@given(VALUES, st.integers(min_value=1, max_value=5))
@settings(max_examples=300, deadline=None)
def test_a_stored_value_is_always_displayable(value: Any, depth: int) -> None:
    shown = displayable(value, depth)
    json.dumps(shown, ensure_ascii=False).encode("utf-8")
    assert depth_of(shown) <= depth
    if depth_of(value) <= depth:
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return
        assert shown is value


def test_displayable_marks_what_it_cut() -> None:
    assert displayable({"a": {"b": {"c": 1}}}, 2) == {"a": {"b": TOO_DEEP_MARKER}}
    assert displayable({"k\ud800": "v\udfff"}, 2) == {"k\ufffd": "v\ufffd"}


@given(HOSTILE_TEXT | st.text(alphabet="()*+?.|[]{}\\^$aZ0-9,", max_size=40))
@settings(max_examples=300, deadline=None)
def test_any_pattern_compiles_or_is_a_400(pattern: str) -> None:
    try:
        compiled = compile_pattern(pattern, 1024)
    except InvalidRequestError:
        return
    compiled.match("refs/heads/" + "a" * 100)


@pytest.mark.parametrize(
    "pattern", ["(.*)*Z", "(a+)+$", "(a|aa)+b", "(x+x+)+y", "^(([a-z])+.)+[A-Z]([a-z])+$"]
)
def test_backtracking_patterns_run_in_linear_time(pattern: str) -> None:
    """The classic catastrophic patterns, against a 100,000-character subject: milliseconds
    (Python's engine needs longer than the age of the universe for some of them)."""
    compiled = compile_pattern(pattern, 1024)
    started = time.perf_counter()
    for subject in ("a" * 100_000, "x" * 100_000, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"):
        compiled.match(subject)
    assert time.perf_counter() - started < 0.5


def test_a_stored_pattern_the_engine_refuses_never_fires() -> None:
    build = get_event("build_success")
    data = {"trigger_metadata": {"ref": "refs/heads/aa"}}
    limits = Settings()
    assert build.should_deliver({"ref-regex": "refs/heads/(a)\\1"}, data, limits) is False
    assert build.should_deliver({"ref-regex": "refs/heads/a+"}, data, limits) is True
    assert build.should_deliver({"ref-regex": "x" * 2000}, data, limits) is False
    assert build.should_deliver({"ref-regex": "refs"}, {"trigger_metadata": "x"}, limits) is False
    assert (
        build.should_deliver({"ref-regex": "refs"}, {"trigger_metadata": {"ref": 5}}, limits)
        is False
    )


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("9b2f2c9e-6d1e-4a39-9f59-2f2d0bb1c1a4", True),
        ("9B2F2C9E-6D1E-4A39-9F59-2F2D0BB1C1A4", False),
        ("9b2f2c9e-6d1e-4a39-9f59-2f2d0bb1c1a4\n", False),
        ("x9b2f2c9e-6d1e-4a39-9f59-2f2d0bb1c1a4", False),
        ("\x00", False),
        ("", False),
    ],
)
def test_ids_are_matched_whole(text: str, ok: bool) -> None:
    assert is_uuid(text) is ok


def test_check_text() -> None:
    check_text("plain ✓", "t")
    for bad in ("\x00", "a\ud800"):
        with pytest.raises(InvalidRequestError):
            check_text(bad, "t")
