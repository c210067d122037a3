"""dispatcher's two failure notices, ``notification_failing`` and ``notification_disabled``:
the events :mod:`dispatcher.pipeline.notices` reports about a repository's own notifications."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from dispatcher.events.base import Data, EventType

# -- failure notices ---------------------------------------------------------------------------
#
# dispatcher reports these itself (see dispatcher.pipeline.notices) about a notification of the
# repository: ``notification`` describes it (uuid, title, event, method, masked target), then
# the failure counter, the failed delivery and the last attempt's status code and error.


def _notice_name(data: Data) -> str:
    notification = data["notification"]
    return str(notification.get("title") or notification["event"])


def _notice_sample(disabled: bool) -> Callable[[Data, datetime], Data]:
    def sample(_config: Data, _now: datetime) -> Data:
        data: Data = {
            "notification": {
                "uuid": "00000000-0000-4000-8000-000000000000",
                "title": "Deploy hook",
                "event": "repo_push",
                "method": "webhook",
                "target": "https://ci.example.com/***",
            },
            "number_of_failures": 3 if disabled else 1,
            "max_failures": 3,
            "delivery_id": "00000000-0000-4000-8000-000000000001",
            "status_code": 500,
            "error": "HTTP 500",
        }
        return data  # a real notification_disabled also carries ``reenable`` (reenable_hint)

    return sample


def reenable_hint(namespace: str, name: str, notification_uuid: str) -> Data:
    """How to re-enable a disabled notification: Quay's reset call and the command line."""
    return {
        "api": f"POST /api/v1/repository/{namespace}/{name}/notification/{notification_uuid}",
        "cli": f"dispatcher notifications reset {notification_uuid}",
    }


NOTIFICATION_FAILING = EventType(
    name="notification_failing",
    title="Notification failing",
    level=lambda _data: "warning",
    summary=lambda data: (
        f"Notification {_notice_name(data)} of repository {data['repository']} failed "
        f"({data['number_of_failures']} of {data['max_failures']} failures)"
    ),
    sample=_notice_sample(disabled=False),
    notice=True,
)
NOTIFICATION_DISABLED = EventType(
    name="notification_disabled",
    title="Notification disabled",
    level=lambda _data: "error",
    summary=lambda data: (
        f"Notification {_notice_name(data)} of repository {data['repository']} disabled "
        f"after {data['number_of_failures']} failures"
    ),
    sample=_notice_sample(disabled=True),
    notice=True,
)

NOTICES = (NOTIFICATION_FAILING, NOTIFICATION_DISABLED)

__all__ = ["NOTICES", "NOTIFICATION_DISABLED", "NOTIFICATION_FAILING", "reenable_hint"]
