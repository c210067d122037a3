"""Bounds on what a caller may supply: every value from a request body, a path, a query string
or a producer is hostile until checked here.

* :func:`parse_json` reads JSON strictly: no ``NaN``/``Infinity`` (PostgreSQL refuses them), no
  number beyond what a float holds, and nesting the parser cannot follow is a 400, not a crash.
* :func:`check_value` bounds a parsed value: nesting at most ``settings.max_json_depth`` levels,
  at most ``max_bytes`` once serialised, only JSON types, and no text that the database or the
  wire cannot carry (a NUL, which PostgreSQL refuses, or a lone surrogate, which is not
  Unicode). :func:`check_text` does the text part for one string.
* :func:`compile_pattern` compiles a user's regular expression on RE2, whose matching time is
  linear in the text: no pattern can stall a process by backtracking.
* :func:`displayable` is the other direction: a stored value, possibly written before these
  bounds existed, made safe to serialise in a response (never a 500 on a list).

Every error is an :class:`~dispatcher.errors.InvalidRequestError` whose message names the
field and, inside it, where the problem is (``config.template``, ``data.tags[3]``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import re2

from dispatcher.errors import InvalidRequestError, echo, unicode_safe

# JSON integers beyond 64 bits are refused: most clients cannot read them back exactly.
_INT_BOUND = 2**64
TOO_DEEP_MARKER = "[nested too deeply]"
# Notification uuids and delivery ids: lower-case UUIDs, as this service makes them.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class _Frame:
    """Where a value sits inside a field, for error messages; built only when one is needed."""

    parent: _Frame | None
    step: str

    def path(self) -> str:
        steps: list[str] = []
        frame: _Frame | None = self
        while frame is not None:
            steps.append(frame.step)
            frame = frame.parent
        return "".join(reversed(steps))


def _key_step(key: str) -> str:
    return f".{echo(key)}"


# Quay's rules: a namespace is 2-255 lower-case letters and digits in runs joined by single
# '.', '_' or '-'; a repository name starts with a letter or digit, then up to 254 of those
# and '.', '_', '-'.
_NAMESPACE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_REPOSITORY = re.compile(r"[a-z0-9][a-z0-9._-]{0,254}")


def is_valid_name(namespace: str, name: str) -> bool:
    """True when ``namespace/name`` follows Quay's naming rules (whole strings: a trailing
    newline is not allowed)."""
    return (
        2 <= len(namespace) <= 255
        and _NAMESPACE.fullmatch(namespace) is not None
        and _REPOSITORY.fullmatch(name) is not None
    )


def is_uuid(text: str) -> bool:
    """True for an id this service could have made; anything else names nothing and need
    not be looked up (a NUL or a megabyte of text never reaches the database)."""
    return _UUID.fullmatch(text) is not None


def strict_loads(raw: bytes | str) -> Any:
    """``raw`` parsed as strict JSON; ValueError saying why if it is not (nesting too deep
    for the parser included)."""
    try:
        return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def parse_json(raw: bytes | str, what: str) -> Any:
    """``raw`` parsed as strict JSON; InvalidRequestError naming ``what`` if it is not."""
    try:
        return strict_loads(raw)
    except ValueError as exc:
        raise InvalidRequestError(f"{what} is not valid JSON: {exc}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {echo(text)} is out of range")
    return value


def check_text(text: str, where: str) -> None:
    """InvalidRequestError unless ``text`` is Unicode without NUL characters."""
    if "\x00" in text:
        raise InvalidRequestError(f"{where} must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequestError(f"{where} is not valid Unicode (lone surrogate)") from None


def check_value(value: Any, field: str, *, max_depth: int, max_bytes: int) -> None:
    """InvalidRequestError naming ``field`` (and the place inside it) unless ``value`` is made
    of JSON types only, nests at most ``max_depth`` levels (a scalar is level 0, an object
    level 1), serialises to at most ``max_bytes`` bytes, and holds no key or string that
    :func:`check_text` refuses."""
    stack: list[tuple[Any, int, _Frame]] = [(value, 0, _Frame(None, field))]
    texts = False
    while stack:
        node, depth, frame = stack.pop()
        if isinstance(node, Mapping):
            if depth >= max_depth:
                raise _too_deep(frame, max_depth)
            for key, item in node.items():
                if not isinstance(key, str):
                    raise InvalidRequestError(f"{frame.path()}: object keys must be strings")
                stack.append((item, depth + 1, _Frame(frame, _key_step(key))))
            texts = texts or bool(node)
        elif isinstance(node, list | tuple):
            if depth >= max_depth:
                raise _too_deep(frame, max_depth)
            stack.extend(
                (item, depth + 1, _Frame(frame, f"[{index}]")) for index, item in enumerate(node)
            )
        elif isinstance(node, str):
            texts = True
        elif isinstance(node, bool) or node is None:
            continue
        elif isinstance(node, int):
            if not -_INT_BOUND < node < _INT_BOUND:
                raise InvalidRequestError(f"{frame.path()}: integer out of range")
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise InvalidRequestError(f"{frame.path()}: number out of range")
        else:
            raise InvalidRequestError(f"{frame.path()}: {type(node).__name__} is not a JSON value")
    serialised = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        size = len(serialised.encode("utf-8"))
    except UnicodeEncodeError:
        size = -1
    if size < 0 or (texts and "\\u0000" in serialised):
        _find_bad_text(value, field)
    if size < 0:
        raise InvalidRequestError(f"{field} is not valid Unicode")
    if size > max_bytes:
        raise InvalidRequestError(f"{field} is larger than {max_bytes} bytes")


def _too_deep(frame: _Frame, max_depth: int) -> InvalidRequestError:
    return InvalidRequestError(f"{frame.path()} is nested deeper than {max_depth} levels")


def _find_bad_text(value: Any, field: str) -> None:
    """Raise for the first key or string :func:`check_text` refuses (the value is known to
    hold one, and to be of bounded depth)."""
    stack: list[tuple[Any, _Frame]] = [(value, _Frame(None, field))]
    while stack:
        node, frame = stack.pop()
        if isinstance(node, str):
            check_text(node, frame.path())
        elif isinstance(node, Mapping):
            for key, item in node.items():
                check_text(key, f"{frame.path()} (a key)")
                stack.append((item, _Frame(frame, _key_step(key))))
        elif isinstance(node, list | tuple):
            stack.extend((item, _Frame(frame, f"[{i}]")) for i, item in enumerate(node))


def trim(text: str | None, max_bytes: int) -> str | None:
    """``text`` cut to at most ``max_bytes`` bytes of UTF-8, never inside a character, and
    ending in ``…`` when cut (what is kept of a receiver's answer or an error message)."""
    if text is None:
        return None
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= max_bytes:
        return text
    marker = "…".encode()
    kept = encoded[: max(max_bytes - len(marker), 0)].decode("utf-8", "ignore")
    return kept + "…" if max_bytes >= len(marker) else kept


def displayable(value: Any, max_depth: int) -> Any:
    """A stored ``value`` made safe to serialise: containers nested deeper than ``max_depth``
    become :data:`TOO_DEEP_MARKER` and lone surrogates become U+FFFD. Values within the
    bounds (everything stored since they exist) come back as they are."""
    if _within(value, max_depth):
        return value
    return _cleaned(value, 0, max_depth)


def _within(value: Any, max_depth: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth >= max_depth:
                return False
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, item in items:
                if isinstance(key, str) and not _encodable(key):
                    return False
                stack.append((item, depth + 1))
        elif isinstance(node, str) and not _encodable(node):
            return False
    return True


def _cleaned(node: Any, depth: int, max_depth: int) -> Any:
    # Recursion is bounded: it stops at max_depth.
    if isinstance(node, dict | list):
        if depth >= max_depth:
            return TOO_DEEP_MARKER
        if isinstance(node, dict):
            return {
                _repaired(str(key)): _cleaned(item, depth + 1, max_depth)
                for key, item in node.items()
            }
        return [_cleaned(item, depth + 1, max_depth) for item in node]
    if isinstance(node, str):
        return _repaired(node)
    return node


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _repaired(text: str) -> str:
    return text if _encodable(text) else unicode_safe(text)


# -- regular expressions ----------------------------------------------------------------------


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # RE2 would print to stderr, past our log formatter
    return options


def linear(pattern: str) -> Any:
    """One of dispatcher's own patterns, compiled on RE2 for the text it scans that callers
    wrote (log lines, templates): matching takes time linear in the text, where Python's
    engine can take time quadratic in it (every start position of a long run rescanned)."""
    return re2.compile(pattern, _options())


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str, max_chars: int) -> Any:
    """``pattern`` compiled for matching in linear time (RE2 syntax: Python's without
    backreferences and look-around). InvalidRequestError saying why if it cannot be."""
    if len(pattern) > max_chars:
        raise InvalidRequestError(f"pattern is longer than {max_chars} characters")
    check_text(pattern, "pattern")
    try:
        return re2.compile(pattern, _options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise InvalidRequestError(
            f"{echo(str(reason))} (patterns run on RE2: no backreferences or look-around)"
        ) from None
