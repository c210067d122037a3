"""Recovery after a simulated outage, through real parts: emit → Redis → ``dispatcher worker``
→ a loopback receiver answering 500, on PostgreSQL, until 500 deliveries have failed; the
receiver is fixed; one ``POST …/deliveries/recover`` sends each event once more and none
twice, and the same call again recovers nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from dispatcher.models import Delivery, Notification, utcnow
from dispatcher.runtime import Runtime
from dispatcher.service import tokens
from tests.integration.conftest import Pipeline, Receiver, wait_until

# PostgreSQL only: the outage is too long a test to run twice
pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("pipeline_db", ["postgresql"], indirect=True),
]

OUTAGE = 500


def counted(pipeline: Pipeline, status: str) -> int:
    with pipeline.runtime.sessions() as session:
        return (
            session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.status == status)
            )
            or 0
        )


def test_one_call_after_an_outage_sends_each_event_once_more(
    make_pipeline: Callable[..., Pipeline],
    receiver: Receiver,
    client_for: Callable[[Runtime], httpx.Client],
) -> None:
    # No retries and no disabling: each delivery of the outage fails at its first attempt.
    pipeline = make_pipeline(retry_schedule="", max_failures="100000")
    runtime = pipeline.runtime
    notification_id = pipeline.notification("webhook", {"url": receiver.url("/hook")})
    with runtime.sessions.begin() as session:
        uuid = session.get_one(Notification, notification_id).uuid
        _, secret = tokens.create_token(session, scopes=("repo:admin",), grants=("acme/*",))
    window = {"since": (utcnow() - timedelta(minutes=1)).isoformat()}
    receiver.status = 500
    tags = [f"v{n}" for n in range(OUTAGE)]
    for tag in tags:
        assert pipeline.emit(data={"updated_tags": [tag]}).deliveries == 1
    pipeline.start("worker")
    wait_until(lambda: counted(pipeline, "failed") == OUTAGE, timeout=30)
    assert len(receiver.requests) == OUTAGE

    with receiver.lock:  # the receiver is fixed
        receiver.status = 200
        receiver.requests.clear()
    api = client_for(runtime)
    headers = {"Authorization": f"Bearer {secret}"}
    recover = f"/api/v1/repository/acme/web/notification/{uuid}/deliveries/recover"

    response = api.post(recover, json=window, headers=headers)

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["recovered"] == OUTAGE
    wait_until(lambda: counted(pipeline, "succeeded") == OUTAGE, timeout=30)
    again = api.post(recover, json=window, headers=headers)
    assert again.status_code == 202, again.text
    assert again.json() == {"recovered": 0, "delivery_ids": []}
    with receiver.lock:
        arrived = list(receiver.requests)
    per_tag = Counter(tag for request in arrived for tag in request.json()["updated_tags"])
    assert per_tag == Counter(tags)  # each event once more, none twice
    assert sorted(request.headers["webhook-id"] for request in arrived) == sorted(
        body["delivery_ids"]
    )
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 2 * OUTAGE
