"""The console over HTTP on SQLite and PostgreSQL: sign-in and its cookie, CSRF, the create
form's validation (the API's, beside each field), and bad input answering 4xx pages."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from dispatcher.db import upgrade
from dispatcher.events import EVENTS
from dispatcher.models import AccessToken, utcnow
from dispatcher.runtime import create_runtime
from dispatcher.senders.registry import METHODS, config_fields
from dispatcher.service import authorized_emails, notifications, repositories, tokens
from tests.conftest import LiveServer, MakeToken, serving, settings_for
from tests.console.client import Console, field_errors
from tests.deliverylog import add_delivery, add_notification
from tests.doubles import RecordingDoorbell
from tests.tcpproxy import TCPProxy

REPO = "/repository/acme/web"
WEBHOOK = {"event": "repo_push", "method": "webhook", "config.webhook.url": "https://h.example.com"}


@pytest.fixture
def console(server: LiveServer) -> Iterator[Console]:
    with server.runtime.sessions.begin() as session:
        repositories.add_repository(session, "acme/web")
    client = Console(server.base_url)
    yield client
    client.close()


@pytest.fixture
def signed_in(console: Console, make_token: MakeToken) -> Console:
    assert console.sign_in(make_token(grants=("acme/*",))).status_code == 303
    return console


def create(console: Console, **fields: str) -> str:
    response = console.post(REPO + "/notification/", {**WEBHOOK, **fields})
    assert response.status_code == 303, field_errors(response.text) or response.text
    found = re.search(r"/notification/([0-9a-f-]{36})", response.headers["location"])
    assert found
    return found.group(1)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


# -- signing in and out -----------------------------------------------------------------------


def test_sign_in_keeps_the_token_out_of_every_page_and_url(
    console: Console, make_token: MakeToken, server: LiveServer
) -> None:
    secret = make_token(grants=("acme/*",))
    first = console.get("/")
    assert first.status_code == 401 and 'name="token"' in first.text
    signed = console.sign_in(secret)
    assert (signed.status_code, signed.headers["location"]) == (303, "/console/")
    uuid = create(console)
    assert console.post(f"{REPO}/notification/{uuid}/test").status_code == 303
    delivery = server.runtime.doorbell.rung[-1]  # type: ignore[attr-defined]
    pages = [
        "/",
        REPO,
        f"{REPO}/notification/{uuid}",
        f"{REPO}/notification/{uuid}/live",
        f"{REPO}/notification/{uuid}/delete",
        f"{REPO}/notification/{uuid}/deliveries/{delivery}",
        f"{REPO}/notification/{uuid}/deliveries/{delivery}/live",
    ]
    for page in pages:
        response = console.get(page)
        assert response.status_code == 200, page
        assert secret not in response.text and "dsp_" not in response.text, page
    assert all(secret not in header for header in console.set_cookies[:1])
    out = console.post("/sign-out")
    assert (out.status_code, out.headers["location"]) == (303, "/console/sign-in")
    assert "Max-Age=0" in out.headers["set-cookie"]
    console.cookie = ""
    assert console.get(REPO).status_code == 401


def test_the_cookie_is_http_only_strict_and_scoped(console: Console, make_token: MakeToken) -> None:
    response = console.sign_in(make_token())
    header = response.headers["set-cookie"]
    for flag in ("HttpOnly", "SameSite=strict", "Path=/console", "Secure"):
        assert flag.lower() in header.lower(), header


def test_a_bad_token_does_not_sign_in(console: Console) -> None:
    console.get("/sign-in")
    response = console.post("/sign-in", {"token": "dsp_not-a-token"})
    assert response.status_code == 401
    assert "This token is not valid: it is unknown, expired or revoked." in response.text
    assert console.get("/").status_code == 401


def test_sign_in_returns_to_the_page_asked_for_and_only_inside_the_console(
    console: Console, make_token: MakeToken
) -> None:
    asked = console.get(REPO)
    assert asked.status_code == 401 and f'name="next" value="{REPO}"' in asked.text
    secret = make_token()
    assert console.post("/sign-in", {"token": secret, "next": REPO}).headers["location"] == (
        "/console" + REPO
    )
    for elsewhere in ("//evil.example.com/x", "https://evil.example.com", "/\\evil"):
        console.get("/sign-in")
        response = console.post("/sign-in", {"token": secret, "next": elsewhere})
        assert response.headers["location"] == "/console/", elsewhere


def test_a_revoked_or_expired_token_stops_at_the_next_request(
    signed_in: Console, server: LiveServer, make_token: MakeToken
) -> None:
    assert signed_in.get(REPO).status_code == 200
    with server.runtime.sessions.begin() as session:
        session.execute(update(AccessToken).values(revoked_at=utcnow()))
    response = signed_in.get(REPO)
    assert response.status_code == 401 and "Sign in again" in response.text
    assert signed_in.get("/").status_code == 401

    assert signed_in.sign_in(make_token()).status_code == 303
    assert signed_in.get(REPO).status_code == 200
    with server.runtime.sessions.begin() as session:
        session.execute(
            update(AccessToken)
            .where(AccessToken.revoked_at.is_(None))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert signed_in.get(REPO).status_code == 401


def test_a_cookie_from_elsewhere_is_not_a_session(console: Console, make_token: MakeToken) -> None:
    console.sign_in(make_token())
    good = console.cookie
    for forged in (good[:-3] + "abc", good.replace(".", "x", 1), "eyJ0b2tlbiI6ImRzcF94In0"):
        console.cookie = forged
        assert console.get(REPO).status_code == 401, forged


# -- CSRF -------------------------------------------------------------------------------------


def test_actions_without_the_session_csrf_token_change_nothing(
    signed_in: Console, server: LiveServer, make_token: MakeToken
) -> None:
    uuid = create(signed_in)
    with server.runtime.sessions() as session:
        repository = repositories.get_repository(session, "acme", "web")
    for csrf in ("", "forged"):
        fields = {"csrf": csrf} if csrf else {"back": "repository"}
        for action in ("delete", "reset", "test"):
            response = signed_in.post(f"{REPO}/notification/{uuid}/{action}", fields, csrf=False)
            assert response.status_code == 403, (action, csrf)
            assert "did not come from this console" in response.text
        response = signed_in.post(REPO + "/notification/", {**WEBHOOK, **fields}, csrf=False)
        assert response.status_code == 403
    with server.runtime.sessions() as session:
        assert len(notifications.list_notifications(session, repository)) == 1
    assert server.runtime.doorbell.rung == []  # type: ignore[attr-defined]

    other = Console(server.base_url)
    try:
        other.get("/sign-in")
        stolen = {"token": make_token(), "csrf": signed_in.csrf}
        assert other.post("/sign-in", stolen, csrf=False).status_code == 403
    finally:
        other.close()


# -- the create form --------------------------------------------------------------------------


def form_for(event: str, method: str) -> dict[str, str]:
    fields = {"event": event, "method": method, "title": f"{event} by {method}"}
    for field in EVENTS[event].config_fields:
        fields[f"eventConfig.{field.name}"] = field.example
    for field in config_fields(method):
        fields[f"config.{method}.{field.name}"] = field.example
    return fields


CREATES = [(event, "webhook") for event in EVENTS] + [("repo_push", m) for m in METHODS]


def test_every_event_and_method_can_be_created_through_the_form(
    signed_in: Console, http: httpx.Client, make_token: MakeToken, server: LiveServer
) -> None:
    with server.runtime.sessions.begin() as session:
        repository = repositories.get_repository(session, "acme", "web")
        (address,) = [f.example for f in config_fields("email") if f.name == "email"]
        authorized_emails.authorize(session, repository, address, server.runtime.settings)
    for event, method in CREATES:
        fields = form_for(event, method)
        response = signed_in.post(REPO + "/notification/", fields)
        assert response.status_code == 303, (event, method, field_errors(response.text))
    listed = http.get(f"/api/v1{REPO}/notification/", headers=bearer(make_token())).json()
    stored = {(item["event"], item["method"]): item for item in listed["notifications"]}
    assert set(stored) == set(CREATES)
    for (event, method), item in stored.items():
        assert item["title"] == f"{event} by {method}"
        assert item["event_config"] == {
            field.name: field.value_of(field.example) for field in EVENTS[event].config_fields
        }
        assert item["config"] == {
            field.name: field.value_of(field.example) for field in config_fields(method)
        }


ERRORS: list[tuple[dict[str, str], dict[str, Any], str]] = [
    ({"event": "nope"}, {"event": "nope"}, "f-event"),
    ({"method": "hipchat"}, {"method": "hipchat"}, "f-method"),
    ({"config.webhook.url": ""}, {"config": {}}, "f-webhook-url"),
    (
        {"config.webhook.url": "http://127.0.0.1/x"},
        {"config": {"url": "http://127.0.0.1/x"}},
        "f-webhook-url",
    ),
    (
        {"config.webhook.template": "{nope"},
        {"config": {"url": "https://h.example.com", "template": "{nope"}},
        "f-webhook-template",
    ),
    (
        {"config.webhook.secret": "whsec_short"},
        {"config": {"url": "https://h.example.com", "secret": "whsec_short"}},
        "f-webhook-secret",
    ),
    ({"method": "slack"}, {"method": "slack", "config": {}}, "f-slack-url"),
    (
        {"method": "email", "config.email.email": "a@b\r\nBcc: x@y.z"},
        {"method": "email", "config": {"email": "a@b\r\nBcc: x@y.z"}},
        "f-email-email",
    ),
    (
        {"event": "build_success", "eventConfig.ref-regex": "(["},
        {"event": "build_success", "eventConfig": {"ref-regex": "(["}},
        "f-ec-ref-regex",
    ),
    (
        {"event": "vulnerability_found", "eventConfig.level": "9"},
        {"event": "vulnerability_found", "eventConfig": {"level": 9}},
        "f-ec-level",
    ),
    (
        {"event": "repo_image_expiry"},
        {"event": "repo_image_expiry", "eventConfig": {}},
        "f-ec-days",
    ),
    (
        {"event": "repo_image_expiry", "eventConfig.days": "-3"},
        {"event": "repo_image_expiry", "eventConfig": {"days": -3}},
        "f-ec-days",
    ),
    ({"title": "t" * 256}, {"title": "t" * 256}, "f-title"),
    (
        {"method": "email", "config.email.email": "stranger@example.com"},
        {"method": "email", "config": {"email": "stranger@example.com"}},
        "f-email-email",
    ),
]


def test_create_errors_are_the_apis_and_sit_beside_their_field(
    signed_in: Console, http: httpx.Client, make_token: MakeToken
) -> None:
    headers = bearer(make_token())
    base = {"event": "repo_push", "method": "webhook", "config": {"url": "https://h.example.com"}}
    for form, body, input_id in ERRORS:
        response = signed_in.post(REPO + "/notification/", {**WEBHOOK, **form})
        api = http.post(
            f"/api/v1{REPO}/notification/",
            json={**base, "eventConfig": {}, **body},
            headers=headers,
        )
        assert (response.status_code, api.status_code) == (400, 400), form
        assert field_errors(response.text) == {input_id: api.json()["detail"]}, form
        if "config.webhook.secret" not in form:
            for name, value in form.items():
                if value and name != "title":
                    assert f'value="{value}"' in response.text or value in response.text, name
    assert http.get(f"/api/v1{REPO}/notification/", headers=headers).json() == {"notifications": []}


# -- bad input --------------------------------------------------------------------------------


def test_bad_input_answers_4xx_pages(signed_in: Console, server: LiveServer) -> None:
    uuid = create(signed_in)
    other = "00000000-0000-0000-0000-000000000000"
    notification = f"{REPO}/notification/{uuid}"
    cases: list[tuple[str, str, Any, int]] = [
        ("GET", "/?page=0", None, 400),
        ("GET", "/?page=abc", None, 400),
        ("GET", f"{notification}?status=bogus", None, 400),
        ("GET", f"{notification}?cursor=zzz", None, 400),
        ("GET", f"{notification}?cursor={'a' * 600}", None, 400),
        ("GET", f"{notification}/deliveries/{other}", None, 404),
        ("GET", f"{notification}/deliveries/{'x' * 300}", None, 404),
        ("GET", f"{REPO}/notification/{other}", None, 404),
        ("GET", "/repository/acme/ghost", None, 404),
        ("GET", "/repository/acme/web/nope", None, 404),
        ("GET", "/repository/a/b/c/d/e/f", None, 404),
        ("PUT", REPO, None, 405),
        ("POST", f"{REPO}/notification/{other}/reset", {}, 400),
        ("POST", f"{notification}/deliveries/{other}/redeliver", {}, 404),
    ]
    for verb, path, form, status in cases:
        data = None if form is None else {**form, "csrf": signed_in.csrf}
        response = signed_in.request(verb, path, data=data)
        assert response.status_code == status, (verb, path, response.text[-300:])
        assert response.headers["content-type"].startswith("text/html"), path
    unknown = signed_in.post(f"{REPO}/notification/{other}/delete")
    assert f"No repository notification found for: acme, web, {other}" in unknown.text
    with server.runtime.sessions.begin() as session:
        elsewhere = add_notification(session, "acme/api").uuid
    # a uuid of another repository is an unknown uuid here, as in the API
    assert signed_in.get(f"{REPO}/notification/{elsewhere}").status_code == 404
    assert signed_in.post(f"{REPO}/notification/{elsewhere}/test").status_code == 400
    assert signed_in.get(f"/repository/acme/api/notification/{elsewhere}").status_code == 200

    raw = [
        ({"content-type": "application/json"}, b'{"csrf": "x"}', 400),
        ({"content-type": "application/x-www-form-urlencoded"}, b"csrf=\xff\xfe", 400),
        ({"content-type": "application/x-www-form-urlencoded"}, b"&".join([b"a=1"] * 100), 400),
        (
            {"content-type": "application/x-www-form-urlencoded"},
            b"a=" + b"x" * (server.runtime.settings.max_request_bytes + 1),
            413,
        ),
    ]
    for headers, body, status in raw:
        response = signed_in.request("POST", f"{notification}/reset", content=body, headers=headers)
        assert response.status_code == status, (headers, body[:20])


def test_actions_ring_the_runtimes_doorbell_and_change_what_the_api_shows(
    signed_in: Console, server: LiveServer, http: httpx.Client, make_token: MakeToken
) -> None:
    doorbell = server.runtime.doorbell
    assert isinstance(doorbell, RecordingDoorbell)
    uuid = create(signed_in)
    notification = f"{REPO}/notification/{uuid}"
    tested = signed_in.post(f"{notification}/test")
    assert tested.headers["location"] == f"/console{notification}?notice=tested"
    (delivery,) = doorbell.rung
    assert delivery in signed_in.get(notification).text
    redelivered = signed_in.post(f"{notification}/deliveries/{delivery}/redeliver")
    assert redelivered.status_code == 303 and len(doorbell.rung) == 2
    assert redelivered.headers["location"].endswith(
        f"/deliveries/{doorbell.rung[1]}?notice=redelivered"
    )

    with server.runtime.sessions.begin() as session:
        found = notifications.find_notification(
            session, repositories.get_repository(session, "acme", "web"), uuid
        )
        assert found is not None
        found.number_of_failures, found.disabled_at = 3, utcnow()
    headers = bearer(make_token())
    reset = signed_in.post(f"{notification}/reset", {"back": "notification"})
    assert reset.headers["location"] == f"/console{notification}?notice=reset"
    assert http.get(f"/api/v1{notification}", headers=headers).json()["number_of_failures"] == 0
    deleted = signed_in.post(f"{notification}/delete")
    assert deleted.headers["location"] == f"/console{REPO}?notice=deleted"
    assert http.get(f"/api/v1{notification}", headers=headers).status_code == 404


def test_every_console_response_carries_the_security_headers(console: Console) -> None:
    for path in ("/", "/sign-in", "/static/console.css", "/static/console.js", "/nope"):
        response = console.get(path)
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy, path
        assert response.headers["x-frame-options"] == "DENY"
    assert console.get("/sign-in").headers["cache-control"] == "no-store"


def test_console_root_redirects_to_the_repositories(server: LiveServer) -> None:
    response = httpx.get(server.base_url + "/console")
    assert (response.status_code, response.headers["location"]) == (307, "/console/")


def test_the_api_schema_does_not_list_the_console(http: httpx.Client) -> None:
    assert not [path for path in http.get("/openapi.json").json()["paths"] if "console" in path]


def test_503_pages_while_the_database_is_away(postgres_database: Callable[[], str]) -> None:
    real = postgres_database()
    upgrade(real)
    proxy = TCPProxy(("127.0.0.1", 5432))
    proxy.start()
    proxied = real.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    runtime = create_runtime(settings_for(proxied), doorbell=RecordingDoorbell())
    other = create_runtime(settings_for(proxied), doorbell=RecordingDoorbell())
    with runtime.sessions.begin() as session:
        repositories.add_repository(session, "acme/web")
        _, secret = tokens.create_token(session, scopes=["repo:admin"], grants=["*"])
    try:
        with serving(runtime) as base_url, serving(other) as other_url:
            before = Console(base_url)
            assert before.sign_in(secret).status_code == 303
            proxy.stop()
            down = before.get(REPO)
            assert down.status_code == 503, down.text[-300:]
            assert "The database is unavailable" in down.text
            # another process that never read the cookie key: a cookie cannot be checked,
            # and a visitor without one is asked to sign in (with no cookie set)
            elsewhere = Console(other_url)
            elsewhere.cookie = before.cookie
            assert elsewhere.get(REPO).status_code == 503
            anonymous = Console(other_url)
            asked = anonymous.get(REPO)
            assert asked.status_code == 401 and "set-cookie" not in asked.headers
            proxy.start()
            assert before.get(REPO).status_code == 200
            assert elsewhere.get(REPO).status_code == 200
            for client in (before, elsewhere, anonymous):
                client.close()
    finally:
        proxy.stop()
        runtime.close()
        other.close()


def test_deliveries_are_paged_newest_first_and_filtered(
    signed_in: Console, server: LiveServer
) -> None:
    now = utcnow()
    with server.runtime.sessions.begin() as session:
        notification = add_notification(session)
        uuid = notification.uuid
        made = [
            add_delivery(
                session,
                notification,
                created_at=now - timedelta(minutes=minute),
                status="failed" if minute % 5 == 0 else "succeeded",
            ).id
            for minute in range(25)
        ]
    page = f"{REPO}/notification/{uuid}"
    first = signed_in.get(page)
    shown = re.findall(r'data-delivery="([^"]+)"', first.text)
    assert shown == made[:20]  # default page size, newest first
    older = re.search(r'href="/console([^"]+)">Older</a>', first.text)
    assert older
    second = signed_in.get(older.group(1).replace("&amp;", "&"))
    assert re.findall(r'data-delivery="([^"]+)"', second.text) == made[20:]
    assert "Older</a>" not in second.text and "Newest</a>" in second.text
    failed = signed_in.get(f"{page}?status=failed")
    assert re.findall(r'data-delivery="([^"]+)"', failed.text) == made[::5]
    assert '<option value="failed" selected>' in failed.text
    live = signed_in.get(f"{page}/live?status=failed")
    assert re.findall(r'data-delivery="([^"]+)"', live.text) == made[::5]
    assert 'data-pending="false"' in live.text


def test_what_users_typed_is_shown_as_text(signed_in: Console, server: LiveServer) -> None:
    markup = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    uuid = create(signed_in, title=markup)
    for page in (REPO, f"{REPO}/notification/{uuid}", f"{REPO}/notification/{uuid}/delete"):
        text = signed_in.get(page).text
        assert markup not in text and "&lt;script&gt;" in text, page
    bad = signed_in.post(REPO + "/notification/", {**WEBHOOK, "event": markup})
    assert bad.status_code == 400 and markup not in bad.text
