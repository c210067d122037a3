"""Descriptions of the fields of an ``eventConfig`` or a method's ``config``.

The event catalogue (:data:`dispatcher.events.EVENTS`) and the sender registry
(:func:`dispatcher.senders.config_fields`) describe their fields here, next to the validation
that checks them, so a form can be built for every event and method without knowing any of
them: a new event or method brings its fields along.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

Widget = Literal["text", "url", "email", "password", "textarea", "select", "number"]

# Anything longer is left as text for the validator to refuse with its own message.
_INTEGER = re.compile(r"-?[0-9]{1,9}")
_DECIMAL = re.compile(r"-?[0-9]{1,9}\.[0-9]{1,9}")


@dataclass(frozen=True)
class ConfigField:
    """One field: its key in the config object, how a form shows it, and a valid example.

    ``choices`` are ``(value, label)`` pairs for a ``select``. ``integer`` fields are sent to
    the validator as numbers when the text is one (and as the text otherwise, so the
    validator's message names the problem); ``decimal`` fields as well, fractions included."""

    name: str
    label: str
    widget: Widget = "text"
    required: bool = False
    integer: bool = False
    decimal: bool = False
    help: str = ""
    choices: tuple[tuple[str, str], ...] = ()
    example: str = ""

    def value_of(self, text: str) -> Any:
        """The config value for what a form sent, or None when the field was left empty."""
        text = text.strip()
        if not text:
            return None
        if (self.integer or self.decimal) and _INTEGER.fullmatch(text):
            return int(text)
        if self.decimal and _DECIMAL.fullmatch(text):
            return float(text)
        return text
