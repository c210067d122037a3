"""The delivery log over HTTP: list, page, read one, redeliver (ours, beyond Quay)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from dispatcher.models import Delivery, utcnow
from tests.conftest import LiveServer, MakeToken
from tests.deliverylog import add_delivery, add_notification
from tests.doubles import RecordingDoorbell

PROBLEM_KEYS = {"detail", "error_message", "error_type", "title", "type", "status"}
DELIVERY_KEYS = {"id", "event", "is_test", "status", "attempts", "created", "finished"}
ATTEMPT_KEYS = {"time", "status_code", "latency_ms", "error", "response_excerpt"}


@pytest.fixture
def admin(make_token: MakeToken) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(grants=('acme/*',))}"}


@pytest.fixture
def hook(server: LiveServer) -> str:
    """A webhook notification on acme/web; returns its uuid."""
    with server.runtime.sessions.begin() as session:
        return add_notification(session).uuid


def log_url(uuid: str, repository: str = "acme/web") -> str:
    return f"/api/v1/repository/{repository}/notification/{uuid}/deliveries"


def seed(server: LiveServer, uuid: str, count: int, **kwargs: object) -> list[str]:
    """``count`` deliveries, one second apart (two pairs share a timestamp); newest first."""
    from dispatcher.models import Notification

    base = utcnow() - timedelta(hours=1)
    with server.runtime.sessions.begin() as session:
        notification = session.scalars(select(Notification).where(Notification.uuid == uuid)).one()
        ids = [
            add_delivery(
                session,
                notification,
                created_at=base + timedelta(seconds=index // 2),
                **kwargs,  # type: ignore[arg-type]
            ).id
            for index in range(count)
        ]
    with server.runtime.sessions() as session:
        rows = session.scalars(
            select(Delivery)
            .where(Delivery.id.in_(ids))
            .order_by(Delivery.created_at.desc(), Delivery.id.desc())
        ).all()
        return [row.id for row in rows]


def assert_problem(response: httpx.Response, status: int, error_type: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == PROBLEM_KEYS
    assert body["error_type"] == error_type


def test_list_shows_deliveries_newest_first_with_attempts(
    server: LiveServer, http: httpx.Client, admin: dict[str, str], hook: str
) -> None:
    expected = seed(server, hook, 3, status="failed", attempts=2)

    response = http.get(log_url(hook), headers=admin)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    assert [item["id"] for item in body["deliveries"]] == expected
    first = body["deliveries"][0]
    assert set(first) == DELIVERY_KEYS
    assert first["event"] == "repo_push"
    assert first["is_test"] is False
    assert first["status"] == "failed"
    assert first["created"].endswith("Z") and first["finished"].endswith("Z")
    assert [set(attempt) for attempt in first["attempts"]] == [ATTEMPT_KEYS, ATTEMPT_KEYS]
    assert first["attempts"][0]["status_code"] == 503
    assert first["attempts"][0]["error"] == "HTTP 503 from example.com"
    assert first["attempts"][0]["latency_ms"] == 12.5
    assert http.get(log_url(hook) + "/", headers=admin).json() == body


def test_three_pages_have_no_duplicates_and_no_gaps(
    server: LiveServer, http: httpx.Client, admin: dict[str, str], hook: str
) -> None:
    expected = seed(server, hook, 8)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = http.get(log_url(hook), params=params, headers=admin).json()
        pages += 1
        seen.extend(item["id"] for item in body["deliveries"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == expected


def test_status_filter(
    server: LiveServer, http: httpx.Client, admin: dict[str, str], hook: str
) -> None:
    failed = seed(server, hook, 2, status="failed")
    seed(server, hook, 2, status="succeeded")

    body = http.get(log_url(hook), params={"status": "failed"}, headers=admin).json()

    assert sorted(item["id"] for item in body["deliveries"]) == sorted(failed)


@pytest.mark.parametrize(
    "params",
    [
        {"status": "exploded"},
        {"limit": "0"},
        {"limit": "100000"},
        {"limit": "ten"},
        {"cursor": "not-a-cursor"},
        {"cursor": "WyJ4Il0"},
    ],
)
def test_bad_query_is_a_400_problem(
    http: httpx.Client, admin: dict[str, str], hook: str, params: dict[str, str]
) -> None:
    assert_problem(http.get(log_url(hook), params=params, headers=admin), 400, "invalid_request")


def test_get_one_and_foreign_ids_are_404(
    server: LiveServer, http: httpx.Client, admin: dict[str, str], hook: str
) -> None:
    (mine,) = seed(server, hook, 1)
    with server.runtime.sessions.begin() as session:
        other = add_notification(session)
        foreign = add_delivery(session, other).id
        elsewhere = add_notification(session, "acme/api").uuid

    one = http.get(f"{log_url(hook)}/{mine}", headers=admin)
    assert one.status_code == 200 and one.json()["id"] == mine

    assert_problem(http.get(f"{log_url(hook)}/{foreign}", headers=admin), 404, "not_found")
    assert_problem(
        http.post(f"{log_url(hook)}/{foreign}/redeliver", headers=admin), 404, "not_found"
    )
    assert_problem(http.get(log_url(elsewhere), headers=admin), 404, "not_found")
    assert_problem(http.get(log_url(hook, "acme/api"), headers=admin), 404, "not_found")
    assert_problem(http.get(log_url("no-such-uuid"), headers=admin), 404, "not_found")


def test_auth_is_the_notification_endpoints(
    http: httpx.Client, make_token: MakeToken, hook: str
) -> None:
    assert_problem(http.get(log_url(hook)), 401, "invalid_token")
    other = {"Authorization": f"Bearer {make_token(grants=('other/*',))}"}
    assert_problem(http.get(log_url(hook), headers=other), 403, "insufficient_scope")
    producer = {"Authorization": f"Bearer {make_token(scopes=('events:write',))}"}
    assert_problem(
        http.post(f"{log_url(hook)}/x/redeliver", headers=producer), 403, "insufficient_scope"
    )


def test_redeliver_queues_a_new_delivery_of_the_same_event_even_when_skipped(
    server: LiveServer, http: httpx.Client, admin: dict[str, str]
) -> None:
    with server.runtime.sessions.begin() as session:
        notification = add_notification(session, failures=3, disabled=True)
        skipped = add_delivery(session, notification, status="skipped", attempts=0)
        uuid, old_id, event_id = notification.uuid, skipped.id, skipped.event_id

    response = http.post(f"{log_url(uuid)}/{old_id}/redeliver", headers=admin)

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == DELIVERY_KEYS
    assert body["id"] != old_id
    assert body["status"] == "pending" and body["attempts"] == []
    with server.runtime.sessions() as session:
        new = session.get(Delivery, body["id"])
        assert new is not None
        assert (new.kind, new.event_id, new.status) == ("redelivery", event_id, "pending")
    doorbell = server.runtime.doorbell
    assert isinstance(doorbell, RecordingDoorbell)
    assert doorbell.rung == [body["id"]]
    listed = http.get(log_url(uuid), headers=admin).json()["deliveries"]
    assert [item["id"] for item in listed] == [body["id"], old_id]
