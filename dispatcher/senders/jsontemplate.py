"""Quay's webhook body templates: JSON text with ``${jsonpath}`` placeholders.

The template is any JSON value. Every string in it (object keys, object values, array items)
is scanned for ``${expr}``; ``expr`` is a JSONPath expression (jsonpath-rw dialect, evaluated
with jsonpath-ng) against the event data. Other JSON values are copied unchanged.

* A string that is exactly one placeholder becomes the raw value found: one match → that
  value, several → a list of them, none → ``null``.
* Otherwise each placeholder is replaced by text: no match → ``(none)``; several matches, or
  one match that is a list of several items → the items joined with ``,``; anything else →
  Python's ``str()`` of it (so ``True``, ``['x']``), as Quay does.
* Keys always take the textual form (a JSON key must be a string).

The language is data-only: nothing in a template can run code. Templates are hostile input:
the JSON nests at most ``max_depth`` levels, and each expression is at most ``max_chars``
characters of at most ``2 * max_depth`` steps, so parsing and applying one take bounded time
and stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jsonpath_ng.parser import parse as parse_jsonpath

from dispatcher.bounds import check_value, linear, strict_loads
from dispatcher.errors import InvalidRequestError, echo

_PLACEHOLDER = linear(r"\$\{([^}]*)\}")
_NO_MATCH_TEXT = "(none)"


class JSONTemplateError(Exception):
    """A template that cannot be parsed; the message is Quay's."""


class JSONTemplate:
    """A parsed template with its expressions compiled; :meth:`apply` is pure."""

    def __init__(self, text: str, *, max_depth: int, max_chars: int) -> None:
        try:
            self._template = strict_loads(text)
        except ValueError as exc:
            raise JSONTemplateError(f"Could not parse template: {exc}") from None
        try:
            check_value(self._template, "template", max_depth=max_depth, max_bytes=len(text) * 4)
        except InvalidRequestError as exc:
            raise JSONTemplateError(exc.message) from None
        self._max_chars = max_chars
        self._max_steps = 2 * max_depth
        self._paths: dict[str, Any] = {}
        self._compile(self._template)

    def apply(self, data: Mapping[str, Any]) -> Any:
        """The template with every placeholder filled from ``data``."""
        return self._apply(self._template, data)

    def _compile(self, node: Any) -> None:
        if isinstance(node, str):
            for expression in _PLACEHOLDER.findall(node):
                self._path(expression)
        elif isinstance(node, dict):
            for key, value in node.items():
                self._compile(key)
                self._compile(value)
        elif isinstance(node, list):
            for item in node:
                self._compile(item)

    def _path(self, expression: str) -> Any:
        path = self._paths.get(expression)
        if path is None:
            if not expression.strip():
                raise JSONTemplateError("Empty expression found")
            shown = echo(expression)
            if len(expression) > self._max_chars:
                raise JSONTemplateError(
                    f"For expression `{shown}`: longer than {self._max_chars} characters"
                )
            if expression.count(".") + expression.count("[") > self._max_steps:
                raise JSONTemplateError(
                    f"For expression `{shown}`: more than {self._max_steps} steps"
                )
            try:
                path = parse_jsonpath(expression)
            except Exception as exc:  # jsonpath-ng raises several unrelated types
                raise JSONTemplateError(f"For expression `{shown}`: {echo(str(exc))}") from None
            self._paths[expression] = path
        return path

    def _apply(self, node: Any, data: Mapping[str, Any]) -> Any:
        if isinstance(node, str):
            return self._string(node, data)
        if isinstance(node, dict):
            return {self._text(key, data): self._apply(value, data) for key, value in node.items()}
        if isinstance(node, list):
            return [self._apply(item, data) for item in node]
        return node

    def _string(self, text: str, data: Mapping[str, Any]) -> Any:
        whole = _PLACEHOLDER.fullmatch(text)
        if whole is None:
            return self._text(text, data)
        matches = self._find(whole.group(1), data)
        if not matches:
            return None
        return matches[0] if len(matches) == 1 else matches

    def _text(self, text: str, data: Mapping[str, Any]) -> str:
        return str(_PLACEHOLDER.sub(lambda match: self._inline(match.group(1), data), text))

    def _inline(self, expression: str, data: Mapping[str, Any]) -> str:
        matches = self._find(expression, data)
        if not matches:
            return _NO_MATCH_TEXT
        value = matches[0] if len(matches) == 1 else matches
        if isinstance(value, list) and len(value) > 1:
            return ",".join(str(item) for item in value)
        return str(value)

    def _find(self, expression: str, data: Mapping[str, Any]) -> list[Any]:
        return [match.value for match in self._path(expression).find(data)]


@lru_cache(maxsize=256)
def compile_template(text: str, max_depth: int, max_chars: int) -> JSONTemplate:
    """The parsed template for ``text``, cached (templates are stored per notification and
    applied on every delivery). Raises :class:`JSONTemplateError`."""
    return JSONTemplate(text, max_depth=max_depth, max_chars=max_chars)


def validate_template(text: str, max_depth: int, max_chars: int) -> None:
    """Quay's create-time check: parse the template and apply it to ``{}``."""
    compile_template(text, max_depth, max_chars).apply({})
