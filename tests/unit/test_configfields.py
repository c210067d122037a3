"""What a form's text becomes in a config: numbers where the field takes them, else the text
for the validator to refuse with its own message."""

from __future__ import annotations

import pytest

from dispatcher.configfields import ConfigField
from dispatcher.errors import InvalidFieldError
from dispatcher.senders import ratelimit

INTEGER = ConfigField(name="days", label="Days", widget="number", integer=True)
TEXT = ConfigField(name="url", label="URL")


@pytest.mark.parametrize(
    ("field", "text", "value"),
    [
        (ratelimit.CONFIG_FIELD, "0.5", 0.5),
        (ratelimit.CONFIG_FIELD, " 2 ", 2),
        (ratelimit.CONFIG_FIELD, "-1.5", -1.5),  # the validator says why not
        (ratelimit.CONFIG_FIELD, "1e3", "1e3"),
        (ratelimit.CONFIG_FIELD, "fast", "fast"),
        (ratelimit.CONFIG_FIELD, "", None),
        (INTEGER, "7", 7),
        (INTEGER, "0.5", "0.5"),  # a fraction is no day count
        (TEXT, "12", "12"),
    ],
)
def test_form_text_becomes_the_config_value(field: ConfigField, text: str, value: object) -> None:
    assert field.value_of(text) == value
    assert type(field.value_of(text)) is type(value)


def test_a_rate_limit_from_the_form_passes_the_check_it_meets() -> None:
    ratelimit.check({"rate_limit": ratelimit.CONFIG_FIELD.value_of("0.5")})
    with pytest.raises(InvalidFieldError, match=r"config\.rate_limit"):
        ratelimit.check({"rate_limit": ratelimit.CONFIG_FIELD.value_of("-1")})
