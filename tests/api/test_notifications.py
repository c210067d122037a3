"""The six Quay endpoints over HTTP, on SQLite and PostgreSQL (SPEC §3)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from dispatcher.events import EVENT_NAMES
from dispatcher.models import Delivery, Event, Notification
from dispatcher.service import authorized_emails, repositories
from tests.conftest import LiveServer, MakeToken

BASE = "/api/v1/repository/acme/web/notification"
WEBHOOK = {"url": "http://example.com/hook"}
VIEW_KEYS = {"uuid", "title", "event", "method", "config", "event_config", "number_of_failures"}
PROBLEM_KEYS = {"detail", "error_message", "error_type", "title", "type", "status"}


@pytest.fixture
def admin(server: LiveServer, make_token: MakeToken) -> dict[str, str]:
    with server.runtime.sessions.begin() as session:
        repositories.add_repository(session, "acme/web")
        repositories.add_repository(session, "acme/api")
    return {"Authorization": f"Bearer {make_token(grants=('acme/*',))}"}


def create(http: httpx.Client, headers: dict[str, str], **body: Any) -> httpx.Response:
    payload = {"event": "repo_push", "method": "webhook", "config": WEBHOOK, "eventConfig": {}}
    payload.update(body)
    return http.post(f"{BASE}/", json=payload, headers=headers)


def assert_problem(response: httpx.Response, status: int, error_type: str, detail: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == PROBLEM_KEYS
    assert body["status"] == status
    assert body["error_type"] == error_type
    assert body["title"] == error_type
    assert body["type"].endswith(f"/api/v1/error/{error_type}")
    assert body["detail"] == body["error_message"] == detail


def count_notifications(server: LiveServer) -> int:
    with server.runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(Notification)) or 0


# -- the success rows -------------------------------------------------------------------------


def test_create_returns_the_view_and_list_get_show_it(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    created = create(http, admin, title="deploy hook")
    assert created.status_code == 201
    view = created.json()
    assert set(view) == VIEW_KEYS
    assert view["title"] == "deploy hook"
    assert view["event"] == "repo_push"
    assert view["method"] == "webhook"
    assert view["config"] == WEBHOOK
    assert view["event_config"] == {}
    assert view["number_of_failures"] == 0
    uuid.UUID(view["uuid"])

    listed = http.get(f"{BASE}/", headers=admin)
    assert listed.status_code == 200
    assert listed.json() == {"notifications": [view]}

    fetched = http.get(f"{BASE}/{view['uuid']}", headers=admin)
    assert fetched.status_code == 200
    assert fetched.json() == view


def test_title_is_null_when_absent(http: httpx.Client, admin: dict[str, str]) -> None:
    view = create(http, admin).json()
    assert view["title"] is None


def test_paths_work_with_and_without_trailing_slash(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    payload = {"event": "repo_push", "method": "webhook", "config": WEBHOOK, "eventConfig": {}}
    created = http.post(BASE, json=payload, headers=admin)
    assert created.status_code == 201
    uid = created.json()["uuid"]
    for path in (BASE, f"{BASE}/"):
        response = http.get(path, headers=admin)
        assert response.status_code == 200
        assert [item["uuid"] for item in response.json()["notifications"]] == [uid]


def test_list_shows_only_this_repository(http: httpx.Client, admin: dict[str, str]) -> None:
    mine = create(http, admin).json()["uuid"]
    payload = {"event": "repo_push", "method": "webhook", "config": WEBHOOK, "eventConfig": {}}
    other = http.post("/api/v1/repository/acme/api/notification/", json=payload, headers=admin)
    assert other.status_code == 201
    listed = http.get(f"{BASE}/", headers=admin).json()["notifications"]
    assert [item["uuid"] for item in listed] == [mine]


def test_delete_answers_204_and_the_notification_is_gone(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    uid = create(http, admin).json()["uuid"]
    deleted = http.delete(f"{BASE}/{uid}", headers=admin)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(http.get(f"{BASE}/{uid}", headers=admin), 404, "not_found", "Not Found")


def test_reset_sets_failures_to_zero_and_re_enables(
    http: httpx.Client, admin: dict[str, str], server: LiveServer
) -> None:
    uid = create(http, admin).json()["uuid"]
    with server.runtime.sessions.begin() as session:
        notification = session.scalars(select(Notification).where(Notification.uuid == uid)).one()
        notification.number_of_failures = 3
        notification.disabled_at = notification.created_at
    assert http.get(f"{BASE}/{uid}", headers=admin).json()["number_of_failures"] == 3

    reset = http.post(f"{BASE}/{uid}", headers=admin)
    assert reset.status_code == 204
    assert reset.content == b""
    assert http.get(f"{BASE}/{uid}", headers=admin).json()["number_of_failures"] == 0
    with server.runtime.sessions() as session:
        notification = session.scalars(select(Notification).where(Notification.uuid == uid)).one()
        assert notification.disabled_at is None


def test_test_answers_201_and_queues_a_sample_delivery(
    http: httpx.Client, admin: dict[str, str], server: LiveServer
) -> None:
    uid = create(http, admin).json()["uuid"]
    response = http.post(f"{BASE}/{uid}/test", headers=admin)
    assert response.status_code == 201
    assert response.json() == {}
    with server.runtime.sessions() as session:
        delivery = session.scalars(select(Delivery)).one()
        assert delivery.kind == "test"
        assert delivery.status == "pending"
        event = session.get(Event, delivery.event_id)
        assert event is not None
        assert event.data == {
            "repository": "acme/web",
            "namespace": "acme",
            "name": "web",
            "docker_url": "quay.example.com/acme/web",
            "homepage": "https://quay.example.com/repository/acme/web",
            "updated_tags": ["latest", "foo"],
            "pruned_image_count": 3,
        }
    doorbell = server.runtime.doorbell
    assert getattr(doorbell, "rung", None) == [delivery.id]


@pytest.mark.parametrize("event", EVENT_NAMES)
def test_every_event_can_be_created_and_tested(
    http: httpx.Client, admin: dict[str, str], event: str
) -> None:
    event_config = {"days": 5} if event == "repo_image_expiry" else {}
    created = create(http, admin, event=event, eventConfig=event_config)
    assert created.status_code == 201, created.text
    assert created.json()["event_config"] == event_config
    assert http.post(f"{BASE}/{created.json()['uuid']}/test", headers=admin).status_code == 201


@pytest.mark.parametrize(
    ("method", "config"),
    [
        ("webhook", {"url": "https://hooks.example.com/x"}),
        ("slack", {"url": "https://hooks.slack.com/services/T000/B000/XXXX"}),
        ("email", {"email": "ops@example.com"}),
    ],
)
def test_each_method_can_be_created(
    http: httpx.Client,
    admin: dict[str, str],
    server: LiveServer,
    method: str,
    config: dict[str, Any],
) -> None:
    if method == "email":  # Quay's rule, on by default: the address is confirmed first
        with server.runtime.sessions.begin() as session:
            repository = repositories.get_repository(session, "acme", "web")
            authorized_emails.authorize(
                session, repository, config["email"], server.runtime.settings
            )
    created = create(http, admin, method=method, config=config)
    assert created.status_code == 201, created.text
    assert created.json()["config"] == config


def test_unknown_extra_fields_are_ignored(http: httpx.Client, admin: dict[str, str]) -> None:
    created = create(http, admin, extra="ignored", another={"x": 1})
    assert created.status_code == 201
    assert set(created.json()) == VIEW_KEYS


# -- unknown uuids, foreign uuids, unknown repositories ----------------------------------------


def test_unknown_uuid(http: httpx.Client, admin: dict[str, str]) -> None:
    missing = str(uuid.uuid4())
    message = f"No repository notification found for: acme, web, {missing}"
    assert_problem(http.get(f"{BASE}/{missing}", headers=admin), 404, "not_found", "Not Found")
    assert_problem(http.delete(f"{BASE}/{missing}", headers=admin), 400, "invalid_request", message)
    assert_problem(http.post(f"{BASE}/{missing}", headers=admin), 400, "invalid_request", message)
    assert_problem(
        http.post(f"{BASE}/{missing}/test", headers=admin), 400, "invalid_request", message
    )


def test_uuid_of_another_repository_behaves_like_an_unknown_one(
    http: httpx.Client, admin: dict[str, str], server: LiveServer
) -> None:
    payload = {"event": "repo_push", "method": "webhook", "config": WEBHOOK, "eventConfig": {}}
    foreign = http.post("/api/v1/repository/acme/api/notification/", json=payload, headers=admin)
    uid = foreign.json()["uuid"]
    message = f"No repository notification found for: acme, web, {uid}"
    assert_problem(http.get(f"{BASE}/{uid}", headers=admin), 404, "not_found", "Not Found")
    assert_problem(http.delete(f"{BASE}/{uid}", headers=admin), 400, "invalid_request", message)
    assert_problem(http.post(f"{BASE}/{uid}", headers=admin), 400, "invalid_request", message)
    assert_problem(http.post(f"{BASE}/{uid}/test", headers=admin), 400, "invalid_request", message)
    # nothing happened to it
    still = http.get(f"/api/v1/repository/acme/api/notification/{uid}", headers=admin)
    assert still.status_code == 200
    with server.runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0


@pytest.mark.parametrize(
    ("verb", "path"),
    [
        ("GET", "/notification/"),
        ("POST", "/notification/"),
        ("GET", "/notification/abc"),
        ("DELETE", "/notification/abc"),
        ("POST", "/notification/abc"),
        ("POST", "/notification/abc/test"),
    ],
)
def test_unknown_repository_is_404(
    http: httpx.Client, admin: dict[str, str], verb: str, path: str
) -> None:
    response = http.request(verb, f"/api/v1/repository/acme/nope{path}", headers=admin, json={})
    assert response.status_code == 404
    assert response.json()["error_type"] == "not_found"


def test_unknown_route_and_wrong_verb_answer_problem_json(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    assert http.get("/api/v1/nothing", headers=admin).json()["error_type"] == "not_found"
    wrong = http.put(f"{BASE}/", headers=admin)
    assert wrong.status_code == 405
    assert set(wrong.json()) == PROBLEM_KEYS


# -- bad bodies: 400 (or 413), never a 500, nothing stored --------------------------------------

BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("empty", b"", "Missing JSON body"),
    ("null", b"null", "Missing JSON body"),
    ("not json", b"{event: repo_push", "Request body is not valid JSON"),
    ("array", b"[]", "[] is not of type 'object'"),
    ("empty object", b"{}", "'event' is a required property"),
    (
        "no method",
        b'{"event": "repo_push", "config": {}, "eventConfig": {}}',
        "'method' is a required property",
    ),
    (
        "no config",
        b'{"event": "repo_push", "method": "webhook", "eventConfig": {}}',
        "'config' is a required property",
    ),
    (
        "no eventConfig",
        b'{"config": {"email": "a@b.com"}, "event": "repo_push", "method": "email"}',
        "'eventConfig' is a required property",
    ),
    (
        "config not object",
        b'{"event": "repo_push", "method": "webhook", "config": "x", "eventConfig": {}}',
        "'x' is not of type 'object'",
    ),
    (
        "event not string",
        b'{"event": 5, "method": "webhook", "config": {}, "eventConfig": {}}',
        "5 is not of type 'string'",
    ),
    (
        "eventConfig list",
        b'{"event": "repo_push", "method": "webhook", "config": {}, "eventConfig": []}',
        "[] is not of type 'object'",
    ),
    (
        "title null",
        b'{"event": "repo_push", "method": "webhook", "config": {"url": "http://e.com"},'
        b' "eventConfig": {}, "title": null}',
        "None is not of type 'string'",
    ),
    (
        "title too long",
        b'{"event": "repo_push", "method": "webhook", "config": {"url": "http://e.com"},'
        b' "eventConfig": {}, "title": "' + b"x" * 256 + b'"}',
        "'title' is too long (maximum 255 characters)",
    ),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, "Request body is not valid JSON"),
    (
        "rate_limit NaN",
        b'{"event": "repo_push", "method": "slack", "eventConfig": {},'
        b' "config": {"url": "https://hooks.slack.com/services/T0/B0/X", "rate_limit": NaN}}',
        "Request body is not valid JSON: NaN is not a JSON number",
    ),
    (
        "rate_limit infinite",
        b'{"event": "repo_push", "method": "webhook", "eventConfig": {},'
        b' "config": {"url": "http://e.com", "rate_limit": 1e999}}',
        "out of range",
    ),
]


@pytest.mark.parametrize(
    ("body", "message"), [(b, m) for _, b, m in BAD_BODIES], ids=[n for n, _, _ in BAD_BODIES]
)
def test_bad_bodies_are_400_and_store_nothing(
    http: httpx.Client, admin: dict[str, str], server: LiveServer, body: bytes, message: str
) -> None:
    response = http.post(
        f"{BASE}/", content=body, headers={**admin, "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error_type"] == "invalid_request"
    assert message in response.json()["detail"]
    assert count_notifications(server) == 0


def test_a_huge_body_is_413(http: httpx.Client, admin: dict[str, str], server: LiveServer) -> None:
    limit = server.runtime.settings.max_request_bytes
    body = b'{"event": "repo_push", "title": "' + b"x" * limit + b'"}'
    response = http.post(f"{BASE}/", content=body, headers=admin)
    assert response.status_code == 413
    assert response.json()["error_type"] == "request_too_large"
    assert count_notifications(server) == 0


def test_title_of_255_characters_is_accepted(http: httpx.Client, admin: dict[str, str]) -> None:
    response = create(http, admin, title="é" * 255)
    assert response.status_code == 201
    assert response.json()["title"] == "é" * 255


# -- events, methods and their configs ---------------------------------------------------------

RATE_LIMIT_MESSAGE = (
    "config.rate_limit must be a number of messages per second above 0 and at most 1000"
)

INVALID: list[tuple[dict[str, Any], str]] = [
    ({"event": "repo_pull"}, "Unknown event 'repo_pull'"),
    ({"event": "quota_warning"}, "Unknown event 'quota_warning'"),
    ({"method": "hipchat", "config": {}}, "Unknown notification method 'hipchat'"),
    ({"method": "flowdock", "config": {}}, "Unknown notification method 'flowdock'"),
    ({"method": "carrier_pigeon"}, "Unknown notification method 'carrier_pigeon'"),
    ({"config": {}}, "Missing webhook URL"),
    ({"config": {"url": ""}}, "Missing webhook URL"),
    ({"config": {"url": "telnet://example.com"}}, "Invalid webhook URL"),
    ({"config": {"url": "http://localhost/"}}, "Invalid webhook URL"),
    ({"config": {"url": "http://localhost:5000/"}}, "Invalid webhook URL"),
    (
        {"config": {"url": "https://127.0.0.1:5000/"}},
        "Invalid webhook URL: 127.0.0.1 is a loopback address; set DISPATCHER_ALLOWED_NETWORKS",
    ),
    ({"config": {"url": "http://[::1]/"}}, "Invalid webhook URL"),
    ({"config": {"url": "http://10.1.2.3/"}}, "Invalid webhook URL"),
    ({"config": {"url": "http://192.168.0.5/"}}, "Invalid webhook URL"),
    ({"config": {"url": "http://169.254.169.254/latest"}}, "Invalid webhook URL"),
    ({"method": "slack", "config": {}}, "Missing Slack Callback URL"),
    ({"method": "email", "config": {}}, "Missing e-mail address"),
    ({"method": "email", "config": {"email": ""}}, "Missing e-mail address"),
    ({"method": "email", "config": {"email": "not-an-address"}}, "Invalid e-mail address"),
    (
        {"method": "email", "config": {"email": "a@example.com\r\nBcc: victim@example.com"}},
        "Invalid e-mail address",
    ),
    *(
        ({"method": method, "config": {**config, "rate_limit": rate}}, RATE_LIMIT_MESSAGE)
        for method, config in (
            ("webhook", WEBHOOK),
            ("slack", {"url": "https://hooks.slack.com/services/T0/B0/X"}),
            ("email", {"email": "ops@example.com"}),
        )
        for rate in (0, -1, "2", True, 1000.5, [1])
    ),
    ({"event": "build_success", "eventConfig": {"ref-regex": "]["}}, "ref-regex"),
    ({"event": "vulnerability_found", "eventConfig": {"level": 6}}, "'level'"),
    ({"event": "vulnerability_found", "eventConfig": {"level": -1}}, "'level'"),
    ({"event": "vulnerability_found", "eventConfig": {"level": "high"}}, "'level'"),
    ({"event": "repo_image_expiry", "eventConfig": {}}, "'days' is required"),
    *(
        ({"event": "repo_image_expiry", "eventConfig": {"days": days}}, "'days' must be a positive")
        for days in (0, "0", -1, "-1", "abc", "", "1.5", 1.5, True, None, [7], "\u0661", 36501)
    ),
]


@pytest.mark.parametrize(("body", "message"), INVALID, ids=[m for _, m in INVALID])
def test_invalid_notifications_are_400_with_a_message(
    http: httpx.Client,
    admin: dict[str, str],
    server: LiveServer,
    body: dict[str, Any],
    message: str,
) -> None:
    response = create(http, admin, **body)
    assert response.status_code == 400, response.text
    assert response.json()["error_type"] == "invalid_request"
    assert message in response.json()["detail"]
    assert count_notifications(server) == 0


VALID_EVENT_CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("build_success", {"ref-regex": "refs/heads/.+"}),
    ("build_queued", {"ref-regex": ""}),
    ("vulnerability_found", {"level": 0}),
    ("vulnerability_found", {"level": 5}),
    ("vulnerability_found", {"level": "3"}),
    ("repo_image_expiry", {"days": 30}),
    ("repo_image_expiry", {"days": "7"}),
    ("repo_image_expiry", {"days": 36500}),
]


@pytest.mark.parametrize(
    ("method", "config"),
    [
        ("webhook", {**WEBHOOK, "rate_limit": 0.5}),
        ("slack", {"url": "https://hooks.slack.com/services/T0/B0/X", "rate_limit": 20}),
    ],
)
def test_a_rate_limit_is_stored_and_shown(
    http: httpx.Client, admin: dict[str, str], method: str, config: dict[str, Any]
) -> None:
    response = create(http, admin, method=method, config=config)
    assert response.status_code == 201, response.text
    assert response.json()["config"] == config


@pytest.mark.parametrize(("event", "event_config"), VALID_EVENT_CONFIGS)
def test_valid_event_configs_are_stored_verbatim(
    http: httpx.Client, admin: dict[str, str], event: str, event_config: dict[str, Any]
) -> None:
    response = create(http, admin, event=event, eventConfig=event_config)
    assert response.status_code == 201, response.text
    assert response.json()["event_config"] == event_config
