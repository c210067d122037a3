"""The event catalogue: Quay's eleven repository events (:mod:`~dispatcher.events.quay`), and
dispatcher's two failure notices (:mod:`~dispatcher.events.notices`).

Each :class:`EventType` knows its level (Slack colour), its one-line summary (e-mail subject,
Slack text), its sample data (what ``test`` delivers), the fields of its ``eventConfig`` (for
forms) and how to validate one at create time, and its filter (``should_deliver``), applied
when an event is fanned out.
The words users read in messages live in ``templates/``, not here.
"""

from __future__ import annotations

from collections.abc import Mapping

from dispatcher.errors import UnknownEventError
from dispatcher.events.base import Data, EventType, event_data
from dispatcher.events.notices import NOTICES, reenable_hint
from dispatcher.events.quay import MAX_EXPIRY_DAYS, QUAY_EVENTS, SEVERITIES, expiry_days

EVENTS: Mapping[str, EventType] = {event.name: event for event in (*QUAY_EVENTS, *NOTICES)}
EVENT_NAMES = tuple(EVENTS)
NOTICE_EVENTS = tuple(event.name for event in NOTICES)


def get_event(name: str) -> EventType:
    """The catalogue entry for ``name``; :class:`UnknownEventError` if there is none."""
    try:
        return EVENTS[name]
    except KeyError:
        raise UnknownEventError(name) from None


__all__ = [
    "EVENTS",
    "EVENT_NAMES",
    "MAX_EXPIRY_DAYS",
    "NOTICE_EVENTS",
    "SEVERITIES",
    "Data",
    "EventType",
    "event_data",
    "expiry_days",
    "get_event",
    "reenable_hint",
]
