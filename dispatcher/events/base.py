"""What every event of the catalogue is: :class:`EventType`, Quay's envelope of event data
(:func:`event_data`), and the reading of a count as Quay takes one (:func:`parse_count`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dispatcher.configfields import ConfigField

if TYPE_CHECKING:  # the command line reads the catalogue without loading the settings
    from dispatcher.config import Settings

Data = dict[str, Any]


def event_data(
    namespace: str,
    name: str,
    extra: Mapping[str, Any],
    *,
    server_hostname: str,
    url_scheme: str,
    subpage: str | None = None,
) -> Data:
    """Quay's envelope (repository, namespace, name, docker_url, homepage), ``extra`` over it."""
    homepage = f"{url_scheme}://{server_hostname}/repository/{namespace}/{name}"
    if subpage:
        homepage += subpage if subpage.startswith("/") else f"/{subpage}"
    data: Data = {
        "repository": f"{namespace}/{name}",
        "namespace": namespace,
        "name": name,
        "docker_url": f"{server_hostname}/{namespace}/{name}",
        "homepage": homepage,
    }
    data.update(extra)
    return data


@dataclass(frozen=True)
class EventType:
    """One entry of the catalogue. ``summary`` and ``level`` read event data and may raise
    ``KeyError`` when a producer left out a field the event needs. ``validate_config`` checks
    an eventConfig at create time and ``should_deliver(config, data, settings)`` is its filter
    at fan-out; both evaluate a caller's patterns in bounded time."""

    name: str
    title: str
    level: Callable[[Data], str]
    summary: Callable[[Data], str]
    sample: Callable[[Data, datetime], Data]
    subpage: Callable[[Data], str | None] = field(default=lambda _data: None)
    validate_config: Callable[[Data, Settings], None] = field(
        default=lambda _config, _settings: None
    )
    should_deliver: Callable[[Data, Data, Settings], bool] = field(
        default=lambda _config, _data, _settings: True
    )
    config_fields: tuple[ConfigField, ...] = ()
    notice: bool = False  # dispatcher reports it about its own notifications; producers cannot


# A whole number as JSON gives it or as a string of ASCII digits ("7"; Quay's old UI sends
# strings). Bounded, so int() never sees a digit string it refuses or takes long over.
_DIGITS = re.compile(r"\s*([0-9]{1,9})\s*")


def parse_count(value: Any) -> int | None:
    """``value`` as an int when it is an integer or a numeric string, else None (booleans,
    floats, signs, words and non-ASCII digits included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        match = _DIGITS.fullmatch(value)
        return int(match.group(1)) if match else None
    return None


__all__ = ["Data", "EventType", "event_data", "parse_count"]
