"""The event catalogue's eventConfig rules: ``days`` and ``level`` as numbers or numeric
strings, as Quay takes them; anything else refused at create with a message."""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher.config import Settings
from dispatcher.errors import InvalidRequestError
from dispatcher.events import MAX_EXPIRY_DAYS, expiry_days, get_event

SETTINGS = Settings()


@pytest.mark.parametrize(
    ("days", "parsed"), [(7, 7), ("7", 7), (" 30 ", 30), ("1", 1), (MAX_EXPIRY_DAYS, 36500)]
)
def test_days_is_a_positive_integer_or_a_numeric_string(days: Any, parsed: int) -> None:
    assert expiry_days({"days": days}) == parsed
    get_event("repo_image_expiry").validate_config({"days": days}, SETTINGS)


REFUSED_DAYS = [0, "0", -1, "-1", "+3", "abc", "", "1.5", 1.5, True, False, None, [7], {"n": 7}]


@pytest.mark.parametrize("days", [*REFUSED_DAYS, "\u0661", MAX_EXPIRY_DAYS + 1, "9" * 5000])
def test_days_refused(days: Any) -> None:
    assert expiry_days({"days": days}) is None
    with pytest.raises(InvalidRequestError, match="'days' must be a positive integer"):
        get_event("repo_image_expiry").validate_config({"days": days}, SETTINGS)


def test_days_is_required() -> None:
    with pytest.raises(InvalidRequestError, match="'days' is required"):
        get_event("repo_image_expiry").validate_config({}, SETTINGS)


@pytest.mark.parametrize("level", [0, "3", 5, " 2 "])
def test_level_accepts_an_index_or_a_numeric_string(level: Any) -> None:
    get_event("vulnerability_found").validate_config({"level": level}, SETTINGS)


@pytest.mark.parametrize("level", [6, -1, "high", "\u00b2", "9" * 5000, True, 2.0])
def test_level_refused_without_a_server_error(level: Any) -> None:
    with pytest.raises(InvalidRequestError, match="'level'"):
        get_event("vulnerability_found").validate_config({"level": level}, SETTINGS)
