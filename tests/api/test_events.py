"""The producer endpoint ``POST /api/v1/repository/{ns}/{repo}/events`` over HTTP."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from dispatcher.models import Delivery, Event
from dispatcher.service import repositories
from tests.conftest import LiveServer, MakeToken

URL = "/api/v1/repository/acme/web/events"
HOOK = {
    "event": "repo_push",
    "method": "webhook",
    "config": {"url": "http://example.com/hook"},
    "eventConfig": {},
}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_an_event_is_stored_and_fanned_out(
    server: LiveServer, http: httpx.Client, make_token: MakeToken
) -> None:
    admin = bearer(make_token(grants=("acme/*",)))
    with server.runtime.sessions.begin() as session:
        repositories.add_repository(session, "acme/web")
    created = http.post("/api/v1/repository/acme/web/notification/", json=HOOK, headers=admin)
    assert created.status_code == 201

    producer = bearer(make_token(scopes=("events:write",), grants=("acme/web",)))
    response = http.post(
        URL, json={"event": "repo_push", "data": {"updated_tags": ["v1"]}}, headers=producer
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["deliveries"] == 1
    with server.runtime.sessions() as session:
        event = session.get_one(Event, body["event_id"])
        assert event.data["updated_tags"] == ["v1"]
        assert event.data["repository"] == "acme/web"
        delivery = session.scalars(select(Delivery)).one()
        assert delivery.event_id == event.id and delivery.kind == "event"


def test_emitting_registers_an_unknown_repository(
    server: LiveServer, http: httpx.Client, make_token: MakeToken
) -> None:
    producer = bearer(make_token(scopes=("events:write",), grants=("acme/*",)))
    response = http.post(URL, json={"event": "repo_push", "data": {}}, headers=producer)
    assert response.status_code == 202
    assert response.json()["deliveries"] == 0
    with server.runtime.sessions() as session:
        assert repositories.find_repository(session, "acme", "web") is not None


@pytest.mark.parametrize(
    ("scopes", "grants", "status"),
    [
        (("repo:admin",), ("acme/*",), 403),
        (("events:write",), ("acme/api",), 403),
        (("events:write",), ("other/*",), 403),
    ],
)
def test_the_scope_and_a_covering_grant_are_required(
    http: httpx.Client, make_token: MakeToken, scopes: tuple[str, ...], grants: tuple[str, ...],
    status: int,
) -> None:  # fmt: skip
    headers = bearer(make_token(scopes=scopes, grants=grants))
    response = http.post(URL, json={"event": "repo_push", "data": {}}, headers=headers)
    assert response.status_code == status
    assert response.json()["error_type"] == "insufficient_scope"
    assert http.post(URL, json={"event": "repo_push"}).status_code == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "Body must be a JSON object"),
        (b'{"event": "repo_pull", "data": {}}', "Unknown event 'repo_pull'"),
        (b'{"event": "repo_push", "data": []}', "Body must be a JSON object"),
        (b'{"event": "notification_failing", "data": {}}', "a producer cannot emit it"),
        (b'{"event": "notification_disabled", "data": {}}', "a producer cannot emit it"),
    ],
)
def test_bad_bodies_are_400(
    server: LiveServer, http: httpx.Client, make_token: MakeToken, body: bytes, message: str
) -> None:
    headers = bearer(make_token(scopes=("events:write",), grants=("acme/web",)))
    response = http.post(URL, content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert message in response.json()["detail"]
    with server.runtime.sessions() as session:
        assert session.scalars(select(Event)).all() == []
        assert repositories.find_repository(session, "acme", "web") is None


def test_a_retry_with_the_same_idempotency_key_answers_200_with_the_first_event(
    server: LiveServer, http: httpx.Client, make_token: MakeToken
) -> None:
    admin = bearer(make_token(grants=("acme/*",)))
    with server.runtime.sessions.begin() as session:
        repositories.add_repository(session, "acme/web")
    assert http.post("/api/v1/repository/acme/web/notification/", json=HOOK, headers=admin)
    producer = bearer(make_token(scopes=("events:write",), grants=("acme/web",)))
    report = {"event": "repo_push", "data": {"updated_tags": ["v1"]}}

    first = http.post(URL, json=report, headers={**producer, "Idempotency-Key": "build-42"})
    again = http.post(URL, json=report, headers={**producer, "Idempotency-Key": "build-42"})
    other = http.post(URL, json=report, headers={**producer, "Idempotency-Key": "build-43"})

    assert first.status_code == 202, first.text
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert other.status_code == 202 and other.json()["event_id"] != first.json()["event_id"]
    with server.runtime.sessions() as session:
        assert len(session.scalars(select(Event)).all()) == 2
        assert len(session.scalars(select(Delivery)).all()) == 2


@pytest.mark.parametrize("key", ["has space", "x" * 256, "ключ"])
def test_a_bad_idempotency_key_is_a_400_and_stores_nothing(
    server: LiveServer, http: httpx.Client, make_token: MakeToken, key: str
) -> None:
    producer = bearer(make_token(scopes=("events:write",), grants=("acme/*",)))
    response = http.post(
        URL,
        json={"event": "repo_push", "data": {}},
        headers=[*producer.items(), ("Idempotency-Key", key.encode())],
    )
    assert response.status_code == 400, response.text
    assert "idempotency key" in response.json()["detail"]
    with server.runtime.sessions() as session:
        assert session.scalars(select(Event)).all() == []
