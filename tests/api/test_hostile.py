"""Hostile input over HTTP, on SQLite and PostgreSQL: each way a caller with a valid token tried
to freeze the service, break a repository, exhaust the database pool or leak a secret answers
a clear 4xx (or is delivered intact), and nothing is stored."""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from dispatcher.bounds import TOO_DEEP_MARKER
from dispatcher.db import Base
from dispatcher.models import Event, Notification, Repository
from dispatcher.runtime import create_runtime
from dispatcher.service import repositories
from tests.conftest import LiveServer, MakeToken, serving, settings_for

BASE = "/api/v1/repository/acme/web/notification"
EVENTS = "/api/v1/repository/acme/web/events"
WEBHOOK = {"url": "http://example.com/hook"}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def admin(server: LiveServer, make_token: MakeToken) -> dict[str, str]:
    with server.runtime.sessions.begin() as session:
        repositories.add_repository(session, "acme/web")
    return bearer(make_token(grants=("acme/*",)))


@pytest.fixture
def producer(make_token: MakeToken) -> dict[str, str]:
    return bearer(make_token(scopes=("events:write",), grants=("*",)))


def snapshot(server: LiveServer) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with server.runtime.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            found = conn.execute(select(table)).all()
            rows[table.name] = sorted((tuple(map(repr, row)) for row in found), key=repr)
    return rows


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def raw_json(value: Any) -> bytes:
    """JSON text of ``value`` (lone surrogates escaped, as a client would send them)."""
    return json.dumps(value).encode()


def create(http: httpx.Client, headers: dict[str, str], **body: Any) -> httpx.Response:
    payload = {"event": "repo_push", "method": "webhook", "config": WEBHOOK, "eventConfig": {}}
    payload.update(body)
    return http.post(
        f"{BASE}/",
        content=raw_json(payload),
        headers={**headers, "Content-Type": "application/json"},
    )


def assert_400(response: httpx.Response, *fragments: str) -> None:
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    for fragment in fragments:
        assert fragment in detail, detail


# -- regular expressions ----------------------------------------------------------------------


def test_a_backtracking_pattern_against_a_hostile_ref_costs_microseconds(
    http: httpx.Client, admin: dict[str, str], producer: dict[str, str]
) -> None:
    created = create(http, admin, event="build_success", eventConfig={"ref-regex": "(.*)*Z"})
    assert created.status_code == 201, created.text
    # Python's backtracking engine needs minutes for 35 characters; RE2 is linear.
    for ref in ("a" * 35, "a" * 500_000):
        data = {"build_id": "b1", "trigger_metadata": {"ref": ref}}
        started = time.perf_counter()
        response = http.post(
            EVENTS, json={"event": "build_success", "data": data}, headers=producer
        )
        assert response.status_code == 202, response.text
        assert response.json()["deliveries"] == 0
        assert time.perf_counter() - started < 2.0
    assert http.get("/healthz").status_code == 200


def test_the_pattern_still_filters_like_quay(
    http: httpx.Client, admin: dict[str, str], producer: dict[str, str]
) -> None:
    pattern = "refs/heads/(main|release-.*)"
    assert create(http, admin, event="build_success", eventConfig={"ref-regex": pattern}).is_success
    delivered = []
    for ref in (
        "refs/heads/main",
        "refs/heads/release-2",
        "refs/heads/feature",
        "x/refs/heads/main",
    ):
        data = {"build_id": "b", "trigger_metadata": {"ref": ref}}
        response = http.post(
            EVENTS, json={"event": "build_success", "data": data}, headers=producer
        )
        delivered.append(response.json()["deliveries"])
    assert delivered == [1, 1, 0, 0]


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("(a)\\1", "backreferences"),
        ("foo(?=bar)", "look-around"),
        ("(?<!x)y", "look-around"),
        ("(" * 500, "missing )"),
        ("(" * 300 + ")" * 300, ""),  # nesting RE2 refuses, or accepts in linear time
        ("x" * 1025, "longer than 1024 characters"),
        ("a\x00b", "NUL"),
    ],
    ids=["backreference", "lookahead", "lookbehind", "500 open", "300 balanced", "long", "nul"],
)
def test_patterns_the_engine_cannot_take_are_refused_saying_why(
    http: httpx.Client, admin: dict[str, str], server: LiveServer, pattern: str, why: str
) -> None:
    before = snapshot(server)
    response = create(http, admin, event="build_start", eventConfig={"ref-regex": pattern})
    if response.status_code == 201:
        assert pattern == "(" * 300 + ")" * 300
        return
    assert_400(response, "ref-regex", why)
    assert snapshot(server) == before


# -- nesting and size -------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["config", "eventConfig"])
def test_a_value_nested_300_deep_is_refused_and_nothing_stored(
    http: httpx.Client, admin: dict[str, str], server: LiveServer, field: str
) -> None:
    before = snapshot(server)
    body = {"config": {**WEBHOOK, "extra": nested(300)}} if field == "config" else {}
    if field == "eventConfig":
        body["eventConfig"] = nested(300)
    response = create(http, admin, **body)
    assert_400(response, field, "nested deeper than 32 levels")
    assert snapshot(server) == before
    assert http.get(f"{BASE}/", headers=admin).status_code == 200


def test_nesting_up_to_the_limit_is_stored_and_shown(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    # config is level 1, so its members may nest 31 levels more
    response = create(http, admin, config={**WEBHOOK, "extra": nested(31)})
    assert response.status_code == 201, response.text
    assert response.json()["config"]["extra"] == nested(31)
    assert_400(create(http, admin, config={**WEBHOOK, "extra": nested(32)}), "config.extra")


def test_a_config_over_the_size_limit_is_refused(
    http: httpx.Client, admin: dict[str, str], server: LiveServer
) -> None:
    before = snapshot(server)
    response = create(http, admin, config={**WEBHOOK, "pad": "x" * 70_000})
    assert_400(response, "config is larger than 65536 bytes")
    assert snapshot(server) == before


def test_rows_stored_before_the_bounds_do_not_break_list_or_get(
    http: httpx.Client, admin: dict[str, str], server: LiveServer
) -> None:
    """A notification written by an earlier version, 300 levels deep and with a lone
    surrogate in its config, is listed and read (its too-deep part shown as a marker)."""
    with server.runtime.sessions.begin() as session:
        repository = repositories.get_repository(session, "acme", "web")
        session.add(
            Notification(
                repository_id=repository.id,
                event="repo_push",
                method="webhook",
                config={**WEBHOOK, "deep": nested(300), "odd": "\ud800"},
                event_config=nested(300),
                number_of_failures=0,
            )
        )
    assert create(http, admin).status_code == 201
    listed = http.get(f"{BASE}/", headers=admin)
    assert listed.status_code == 200, listed.text
    old, new = listed.json()["notifications"]
    assert old["config"]["odd"] == "\ufffd"
    assert TOO_DEEP_MARKER in json.dumps(old["config"]["deep"])
    assert new["config"] == WEBHOOK
    one = http.get(f"{BASE}/{old['uuid']}", headers=admin)
    assert one.status_code == 200, one.text


def test_a_template_nested_2000_deep_is_refused(
    http: httpx.Client, admin: dict[str, str], server: LiveServer
) -> None:
    before = snapshot(server)
    template = "[" * 2000 + "]" * 2000
    response = create(http, admin, config={**WEBHOOK, "template": template})
    assert_400(response, "Could not parse template")
    template = json.dumps(nested(40, "${repository}"))
    response = create(http, admin, config={**WEBHOOK, "template": template})
    assert_400(response, "nested deeper than 32 levels")
    assert snapshot(server) == before


def test_a_template_path_of_5000_segments_is_refused(
    http: httpx.Client, admin: dict[str, str], server: LiveServer
) -> None:
    before = snapshot(server)
    for expression in (".".join(["a"] * 5000), ".".join(["a"] * 100)):
        template = json.dumps({"x": "${" + expression + "}"})
        response = create(http, admin, config={**WEBHOOK, "template": template})
        assert_400(response, "For expression")
    assert snapshot(server) == before


def test_event_data_nested_100000_deep_is_refused(
    http: httpx.Client, producer: dict[str, str], server: LiveServer
) -> None:
    before = snapshot(server)
    body = b'{"event": "repo_push", "data": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001
    response = http.post(EVENTS, content=body, headers=producer)
    assert_400(response, "not valid JSON")
    response = http.post(EVENTS, json={"event": "repo_push", "data": nested(40)}, headers=producer)
    assert_400(response, "data", "nested deeper than 32 levels")
    response = http.post(
        EVENTS,
        json={"event": "repo_push", "data": {}, "performer": nested(40)},
        headers=producer,
    )
    assert_400(response, "performer", "nested deeper than 32 levels")
    assert snapshot(server) == before


@pytest.mark.parametrize(
    "inner",
    ["[" * 60 + "]" * 60, "[" * 5000 + "]" * 5000, '["2020-01-01T00:00:00+00:00", {}]'],
    ids=["deep", "very deep", "wrong shape"],
)
def test_a_cursor_that_decodes_to_nested_json_is_refused(
    http: httpx.Client, admin: dict[str, str], inner: str
) -> None:
    uuid_ = create(http, admin).json()["uuid"]
    cursor = base64.urlsafe_b64encode(inner.encode()).decode().rstrip("=")
    response = http.get(f"{BASE}/{uuid_}/deliveries", params={"cursor": cursor}, headers=admin)
    assert_400(response, "Invalid cursor")


# -- text a database or a response cannot carry -----------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "\ud800"}, "title"),
        ({"title": "a\x00b"}, "title"),
        ({"config": {**WEBHOOK, "note": "\udfff"}}, "config.note"),
        ({"config": {**WEBHOOK, "note\x00": 1}}, "config"),
        ({"eventConfig": {"x": ["ok", "\x00"]}}, "eventConfig.x[1]"),
        ({"event": "repo_push\x00"}, "event"),
        ({"method": "\ud800"}, "method"),
    ],
    ids=["surrogate title", "nul title", "surrogate", "nul key", "nul item", "event", "method"],
)
def test_text_no_database_can_store_is_refused(
    http: httpx.Client, admin: dict[str, str], server: LiveServer, body: dict[str, Any], field: str
) -> None:
    before = snapshot(server)
    assert_400(create(http, admin, **body), field)
    assert snapshot(server) == before


def test_nul_and_garbage_as_ids_are_not_found(
    http: httpx.Client, admin: dict[str, str], server: LiveServer
) -> None:
    uuid_ = create(http, admin).json()["uuid"]
    before = snapshot(server)
    for bad in ("%00", "a%00b", uuid_.upper(), "x" * 5000, f"{uuid_}%0A"):
        assert http.get(f"{BASE}/{bad}", headers=admin).status_code == 404
        for method, suffix in (("DELETE", ""), ("POST", ""), ("POST", "/test")):
            response = http.request(method, f"{BASE}/{bad}{suffix}", headers=admin)
            assert_400(response, "No repository notification found for: acme, web, ")
        assert http.get(f"{BASE}/{bad}/deliveries", headers=admin).status_code == 404
        assert http.get(f"{BASE}/{uuid_}/deliveries/{bad}", headers=admin).status_code == 404
        redeliver = http.post(f"{BASE}/{uuid_}/deliveries/{bad}/redeliver", headers=admin)
        assert redeliver.status_code == 404
    assert snapshot(server) == before


def test_nul_and_newlines_in_repository_names_are_not_found(
    http: httpx.Client, make_token: MakeToken, server: LiveServer
) -> None:
    with server.runtime.sessions.begin() as session:
        repositories.add_repository(session, "acme/web")
    everything = bearer(make_token(grants=("*",)))
    for path in ("acme/web%0A", "acme/we%00b", "ac%00me/web", "acme%0A/web", "a/web"):
        response = http.get(f"/api/v1/repository/{path}/notification/", headers=everything)
        assert response.status_code == 404, (path, response.text)


def test_lone_surrogates_and_nul_in_event_data_are_refused_and_nothing_stored(
    http: httpx.Client, producer: dict[str, str], admin: dict[str, str], server: LiveServer
) -> None:
    assert create(http, admin).status_code == 201
    before = snapshot(server)
    for data, performer, field in (
        ({"updated_tags": ["\ud800"]}, None, "data.updated_tags[0]"),
        ({"\udc00": 1}, None, "data"),
        ({"note": "a\x00"}, None, "data.note"),
        ({}, {"entity_name": "\ud800"}, "performer.entity_name"),
    ):
        body = raw_json({"event": "repo_push", "data": data, "performer": performer})
        response = http.post(EVENTS, content=body, headers=producer)
        assert_400(response, field)
    assert snapshot(server) == before


def test_a_newline_at_the_end_of_a_repository_name_registers_nothing(
    http: httpx.Client, producer: dict[str, str], server: LiveServer
) -> None:
    for name in ("x%0A", "x%0D", "x%00", "X", "x%20y", "-x"):
        response = http.post(
            f"/api/v1/repository/acme/{name}/events", json={"event": "repo_push"}, headers=producer
        )
        assert_400(response, "Invalid repository")
    with server.runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Repository)) == 0
        assert session.scalar(select(func.count()).select_from(Event)) == 0


# -- slow and large requests ------------------------------------------------------------------


def raw_request(base_url: str, head: bytes, body: bytes = b"") -> bytes:
    """Send ``head`` (and ``body``) on a new connection; the server's answer, as far as it came
    before the connection closed. Sending stops where the server stops reading."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        data = head + body
        try:
            for start in range(0, len(data), 65_536):
                sock.sendall(data[start : start + 65_536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while chunk := sock.recv(65_536):
                answer += chunk
        except ConnectionResetError:
            pass
    return answer


@pytest.mark.parametrize("size", [1_048_576, 10_485_760], ids=["1 MB", "10 MB"])
def test_a_huge_request_header_is_431(server: LiveServer, size: int) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
    answer = raw_request(server.base_url, head)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


def test_headers_within_the_limit_are_served(server: LiveServer) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: " + b"a" * 16_000
    head += b"\r\n\r\n"
    assert raw_request(server.base_url, head).startswith(b"HTTP/1.1 200 ")


def test_a_body_over_the_limit_is_413_whatever_its_length_header_says(
    server: LiveServer, admin: dict[str, str]
) -> None:
    auth = admin["Authorization"].encode()
    declared = (
        b"POST "
        + BASE.encode()
        + b"/ HTTP/1.1\r\nHost: x\r\nAuthorization: "
        + auth
        + b"\r\nContent-Length: 5000000\r\n\r\n"
    )
    assert raw_request(server.base_url, declared).startswith(b"HTTP/1.1 413 ")
    chunked = (
        b"POST "
        + BASE.encode()
        + b"/ HTTP/1.1\r\nHost: x\r\nAuthorization: "
        + auth
        + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunks = b"".join(b"10000\r\n" + b"x" * 65_536 + b"\r\n" for _ in range(20)) + b"0\r\n\r\n"
    assert raw_request(server.base_url, chunked, chunks).startswith(b"HTTP/1.1 413 ")


@pytest.fixture
def impatient(database_url: str) -> Iterator[LiveServer]:
    """A server whose request bodies must arrive within one second."""
    runtime = create_runtime(settings_for(database_url, request_body_timeout=1.0))
    with serving(runtime) as base_url:
        yield LiveServer(runtime=runtime, base_url=base_url)
    with runtime.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(text(f"DELETE FROM {table.name}"))
    runtime.close()


def test_trickling_bodies_hold_no_database_connection_and_end_in_408(
    impatient: LiveServer, make_token: MakeToken
) -> None:
    """50 authenticated requests that send their body slowly (more than the database pool holds)
    leave the rest of the API answering at once; each is cut off with 408."""
    with impatient.runtime.sessions.begin() as session:
        repositories.add_repository(session, "acme/web")
    secret = make_token(grants=("acme/*",))
    # make_token writes through the shared server's runtime: same database
    host, port = impatient.base_url.removeprefix("http://").split(":")
    head = (
        f"POST {BASE}/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    ).encode()
    sockets = []
    try:
        for _ in range(50):
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.sendall(head)
            sockets.append(sock)
        with httpx.Client(base_url=impatient.base_url, timeout=10) as http:
            for _ in range(5):
                started = time.perf_counter()
                response = http.get(f"{BASE}/", headers=bearer(secret))
                assert response.status_code == 200, response.text
                assert time.perf_counter() - started < 0.5
        answers = []
        for sock in sockets:
            answers.append(sock.recv(200))
        assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers), answers[:3]
    finally:
        for sock in sockets:
            sock.close()


def test_a_request_id_is_echoed_or_made(http: httpx.Client) -> None:
    given = http.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    for bad in (b"", b"a b", b"x" * 200, "\u00e9".encode()):
        made = http.get("/healthz", headers={"X-Request-ID": bad})
        assert made.headers["x-request-id"].encode() != bad
        assert len(made.headers["x-request-id"]) == 32
    assert uuid.UUID(http.get("/healthz").headers["x-request-id"])
