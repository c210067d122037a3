"""The delivery log over HTTP: list, page, read one, redeliver, recover a window (ours, beyond
Quay)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import select

from dispatcher.models import Delivery, Notification, utcnow
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


# -- recovering a window -----------------------------------------------------------------------


def recover_url(uuid: str) -> str:
    return log_url(uuid) + "/recover"


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def recoveries(server: LiveServer) -> dict[str, Delivery]:
    """Every recovery, by the id of the delivery it recovers."""
    with server.runtime.sessions() as session:
        rows = session.scalars(select(Delivery).where(Delivery.recovers_id.is_not(None)))
        return {str(row.recovers_id): row for row in rows}


def test_recover_sends_the_failed_and_skipped_deliveries_of_a_disabled_notification_once(
    server: LiveServer, http: httpx.Client, admin: dict[str, str]
) -> None:
    ended = utcnow() - timedelta(minutes=30)
    with server.runtime.sessions.begin() as session:
        notification = add_notification(session, failures=3, disabled=True)
        failed = add_delivery(session, notification, status="failed", finished_at=ended)
        skipped = add_delivery(
            session, notification, status="skipped", attempts=0, finished_at=ended
        )
        add_delivery(session, notification, finished_at=ended)  # succeeded
        uuid, originals = (
            notification.uuid,
            {failed.id: failed.event_id, skipped.id: skipped.event_id},
        )
    window = {"since": iso(utcnow() - timedelta(hours=1))}

    response = http.post(recover_url(uuid), json=window, headers=admin)

    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"recovered", "delivery_ids"}
    assert body["recovered"] == 2
    made = recoveries(server)
    assert set(made) == set(originals)
    assert sorted(body["delivery_ids"]) == sorted(row.id for row in made.values())
    for original_id, row in made.items():
        assert (row.kind, row.status, row.event_id) == (
            "redelivery",
            "pending",
            originals[original_id],
        )
    doorbell = server.runtime.doorbell
    assert isinstance(doorbell, RecordingDoorbell)
    assert sorted(doorbell.rung) == sorted(body["delivery_ids"])

    again = http.post(recover_url(uuid) + "/", json=window, headers=admin)

    assert again.status_code == 202, again.text
    assert again.json() == {"recovered": 0, "delivery_ids": []}
    assert len(recoveries(server)) == 2


def test_recover_takes_until_and_reads_a_time_without_offset_as_utc(
    server: LiveServer, http: httpx.Client, admin: dict[str, str], hook: str
) -> None:
    start = (utcnow() - timedelta(hours=3)).replace(microsecond=0)
    with server.runtime.sessions.begin() as session:
        notification = session.scalars(select(Notification).where(Notification.uuid == hook)).one()
        early, late = (
            add_delivery(session, notification, status="failed", finished_at=start + offset).id
            for offset in (timedelta(minutes=10), timedelta(minutes=70))
        )
    window = {
        "since": start.replace(tzinfo=None).isoformat(),
        "until": (start + timedelta(hours=1)).astimezone(timezone(timedelta(hours=2))).isoformat(),
    }

    response = http.post(recover_url(hook), json=window, headers=admin)

    assert response.status_code == 202, response.text
    assert response.json()["recovered"] == 1
    assert set(recoveries(server)) == {early}
    assert late not in recoveries(server)


TOMORROW = iso(utcnow() + timedelta(days=1))
BAD_RECOVER_BODIES: list[tuple[bytes, str]] = [
    (b"", "Body must be a JSON object"),
    (b"null", "Body must be a JSON object"),
    (b"[]", "Body must be a JSON object"),
    (b'"2026-12-01T08:00:00Z"', "Body must be a JSON object"),
    (b"{", "not valid JSON"),
    (b'{"since": NaN}', "not valid JSON"),
    (b"[" * 100_000, "Body must be a JSON object"),
    (b"{}", "'since' is a required property"),
    (b'{"since": null}', "'since' is a required property"),
    (b'{"until": "2026-12-01T08:00:00Z"}', "'since' is a required property"),
    (b'{"since": 1764576000}', "'since' must be a string"),
    (b'{"since": ["2026-12-01"]}', "'since' must be a string"),
    (b'{"since": "2026-12-01", "until": 5}', "'until' must be a string"),
    (b'{"since": "2026-12-01", "until": {}}', "'until' must be a string"),
    (b'{"since": "2026-12-01", "untill": "2026-12-02"}', "Unknown property 'untill'"),
    (b'{"since": "yesterday"}', "'since' must be an ISO-8601 time"),
    (b'{"since": "2026-12-01", "until": "2026-13-01"}', "'until' must be an ISO-8601 time"),
    (b'{"since": "2026-12-01T08:00:00Z\\u0000"}', "'since' must be an ISO-8601 time"),
    (b'{"since": "\\ud800"}', "'since' must be an ISO-8601 time"),
    (b'{"since": "' + b"9" * 500_000 + b'"}', "'since' must be an ISO-8601 time"),
    (b'{"since": "0001-01-01T00:00:00+14:00"}', "'since' must be an ISO-8601 time"),
    (b'{"since": "2026-12-01", "until": "2026-12-01"}', "must be before 'until'"),
    (b'{"since": "2026-12-02", "until": "2026-12-01"}', "must be before 'until'"),
    (b'{"since": "2026-11-01", "until": "2026-12-01"}', "at most the retention window, 14d"),
    (f'{{"since": "{TOMORROW}", "until": null}}'.encode(), "must be before 'until'"),
]


@pytest.mark.parametrize(
    ("body", "message"), BAD_RECOVER_BODIES, ids=[f"{i}" for i in range(len(BAD_RECOVER_BODIES))]
)
def test_a_bad_recover_body_is_a_400_saying_why_and_recovers_nothing(
    server: LiveServer,
    http: httpx.Client,
    admin: dict[str, str],
    hook: str,
    body: bytes,
    message: str,
) -> None:
    seed(server, hook, 2, status="failed")
    headers = {**admin, "Content-Type": "application/json"}

    response = http.post(recover_url(hook), content=body, headers=headers)

    assert_problem(response, 400, "invalid_request")
    assert message in response.json()["detail"]
    assert len(response.json()["detail"]) < 300
    assert recoveries(server) == {}


def test_recover_is_authorised_like_redeliver(
    server: LiveServer, http: httpx.Client, make_token: MakeToken, admin: dict[str, str], hook: str
) -> None:
    seed(server, hook, 1, status="failed")
    window = {"since": iso(utcnow() - timedelta(hours=2))}
    with server.runtime.sessions.begin() as session:
        elsewhere = add_notification(session, "acme/api").uuid
    other = {"Authorization": f"Bearer {make_token(grants=('other/*',))}"}
    producer = {"Authorization": f"Bearer {make_token(scopes=('events:write',))}"}

    assert_problem(http.post(recover_url(hook), json=window), 401, "invalid_token")
    assert_problem(
        http.post(recover_url(hook), json=window, headers=other), 403, "insufficient_scope"
    )
    assert_problem(
        http.post(recover_url(hook), json=window, headers=producer), 403, "insufficient_scope"
    )
    assert_problem(
        http.post(log_url(elsewhere, "acme/web") + "/recover", json=window, headers=admin),
        404,
        "not_found",
    )
    assert_problem(
        http.post(recover_url("no-such-uuid"), json=window, headers=admin), 404, "not_found"
    )
    assert recoveries(server) == {}
