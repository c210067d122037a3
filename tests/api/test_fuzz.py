"""Every endpoint of the API against generated hostile requests (Hypothesis), on SQLite and
PostgreSQL, over real HTTP. Each request starts valid (a known repository, notification and
delivery, a token that may call it, a body the route accepts) and then gets hostile spots: a
path segment, a header, a query parameter, or any value anywhere inside the body replaced by
what an attacker would send. Whatever comes, the answer is never a 5xx, and an answer in 4xx
leaves the database exactly as it was."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.api import create_app
from dispatcher.events import EVENT_NAMES
from dispatcher.service import tokens
from dispatcher.vocabulary import DeliveryStatus
from tests.api.test_hostile import snapshot
from tests.conftest import LiveServer, empty_tables
from tests.deliverylog import add_delivery, add_notification

# What breaks services: NUL (PostgreSQL refuses it), lone surrogates (not Unicode), line
# breaks (names), numbers no parser keeps, deep nesting, and plain random text.
SPECIAL_TEXT = st.sampled_from(
    ["", "\x00", "a\x00b", "\ud800", "x\udfff", "\n", "web\n", "%00", "9" * 5000, "é✓🎉"]
)
HOSTILE_TEXT = SPECIAL_TEXT | st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
DEEP = st.integers(min_value=30, max_value=400).map(lambda depth: nested(depth))
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([2**64, -(2**70), 10**300, 1e308])
    | st.floats(allow_nan=False, allow_infinity=False)
    | HOSTILE_TEXT
)
VALUES = (
    st.recursive(
        SCALARS,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(HOSTILE_TEXT, inner, max_size=3)
        ),
        max_leaves=20,
    )
    | DEEP
)
HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(
    str.strip
)

# Bodies each route accepts as they are.
CONFIGS = {
    "webhook": [
        {"url": "http://example.com/hook"},
        {"url": "https://example.com/h", "template": '{"r": "${repository}"}'},
        {"url": "https://example.com/h", "secret": "whsec_" + "A" * 32},
    ],
    "slack": [{"url": "https://hooks.slack.com/services/T/B/x"}],
    "email": [{"email": "ops@example.com"}],
}
EVENT_CONFIGS = {
    "build_success": {"ref-regex": "refs/heads/.*"},
    "vulnerability_found": {"level": 1},
    "repo_image_expiry": {"days": 7},
}
CREATE = st.builds(
    lambda event, method_config, title: {
        "event": event,
        "method": method_config[0],
        "config": method_config[1],
        "eventConfig": EVENT_CONFIGS.get(event, {}),
        **({"title": title} if title is not None else {}),
    },
    st.sampled_from(EVENT_NAMES),
    st.sampled_from([(method, c) for method, configs in CONFIGS.items() for c in configs]),
    st.none() | st.just("deploy hook"),
)
EMIT = st.builds(
    lambda event, data, performer: {"event": event, "data": data, "performer": performer},
    st.sampled_from(EVENT_NAMES),
    st.sampled_from(
        [
            {"updated_tags": ["v1"]},
            {"build_id": "b1", "trigger_metadata": {"ref": "refs/heads/main"}},
            {"vulnerability": {"priority": "High"}, "tags": ["v1"]},
            {"tags": [{"name": "v1", "expires_at": "2030-01-01T00:00:00Z"}]},
        ]
    ),
    st.none() | st.just({"entity_name": "alice"}),
)

RECOVER = st.builds(
    lambda since, until: {"since": since, **({} if until is None else {"until": until})},
    st.sampled_from(["2030-01-01T00:00:00Z", "2030-01-01T08:00:00+02:00", "2030-01-01"]),
    st.none() | st.just("2030-01-02T00:00:00Z"),
)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def spots(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place inside ``value`` a hostile value can go (each member, and a new key)."""
    yield path
    if isinstance(value, dict):
        yield (*path, "\x00new")
        for key, item in value.items():
            yield from spots(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from spots(item, (*path, index))


def put(value: Any, path: tuple[Any, ...], replacement: Any) -> Any:
    if not path:
        return replacement
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        key = head if head != "\x00new" else replacement if isinstance(replacement, str) else "k"
        return {**value, key: put(value.get(key), rest, replacement)}
    copy = list(value)
    copy[head] = put(copy[head], rest, replacement)
    return copy


@dataclass
class Seeded:
    notification: str
    delivery: str
    admin: str
    producer: str


def seed(server: LiveServer) -> Seeded:
    with server.runtime.sessions.begin() as session:
        notification = add_notification(session, "acme/web")
        delivery = add_delivery(session, notification, status="failed", attempts=2)
        _, admin = tokens.create_token(session, scopes=["repo:admin"], grants=["acme/*"])
        _, producer = tokens.create_token(session, scopes=["events:write"], grants=["*"])
        return Seeded(notification.uuid, delivery.id, admin, producer)


@dataclass
class Target:
    server: LiveServer
    routes: list[tuple[str, list[str]]]
    state: Seeded


@pytest.fixture(scope="module")
def target(live_server: LiveServer) -> Iterator[Target]:
    empty_tables(live_server.runtime)
    yield Target(live_server, routes(live_server), seed(live_server))
    empty_tables(live_server.runtime)


def routes(server: LiveServer) -> list[tuple[str, list[str]]]:
    """Every route of the OpenAPI document with its methods, and each with the other
    spelling of its trailing slash (both are served)."""
    found = []
    for path, item in create_app(server.runtime).openapi()["paths"].items():
        methods = sorted(method.upper() for method in item)
        other = path.rstrip("/") if path.endswith("/") else path + "/"
        found += [(path, methods), (other, methods)]
    return found


def segment(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def maybe(data: st.DataObject, valid: Any, hostile: st.SearchStrategy[Any], label: str) -> Any:
    """``valid`` most of the time, a hostile value drawn from ``hostile`` sometimes."""
    return data.draw(st.just(valid) | st.just(valid) | st.just(valid) | hostile, label=label)


# A hostile value: mostly the text that breaks things, sometimes any structure.
HOSTILE = SPECIAL_TEXT | SPECIAL_TEXT | SPECIAL_TEXT | VALUES
BODY_ROUTES = ("/notification/", "/events", "/recover")
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@given(data=st.data())
@settings(FUZZ, max_examples=200)
def test_hostile_bodies_get_no_5xx_and_a_4xx_changes_nothing(
    target: Target, data: st.DataObject
) -> None:
    """Create and emit bodies with up to three hostile values anywhere inside them."""
    route = data.draw(st.sampled_from(BODY_ROUTES), label="route")
    base = "/api/v1/repository/acme/web"
    if route == "/events":
        body, token = data.draw(EMIT, label="event body"), target.state.producer
    elif route == "/recover":
        body, token = data.draw(RECOVER, label="recover body"), target.state.admin
        route = f"/notification/{target.state.notification}/deliveries/recover"
    else:
        body, token = data.draw(CREATE, label="create body"), target.state.admin
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="hostile spots")):
        where = data.draw(st.sampled_from(list(spots(body))), label="where")
        body = put(body, where, data.draw(HOSTILE, label="hostile value"))
    send(target, "POST", base + route, json.dumps(body).encode(), f"Bearer {token}", {})


@given(data=st.data())
@settings(FUZZ, max_examples=150)
def test_hostile_requests_to_every_route_get_no_5xx_and_a_4xx_changes_nothing(
    target: Target, data: st.DataObject
) -> None:
    """Any route and method, with hostile path segments, headers, query strings and bodies."""
    known = target.state
    path, methods = data.draw(st.sampled_from(target.routes), label="route")
    method = maybe(data, methods[0], st.sampled_from([*methods, "PUT", "PATCH"]), "method")
    known_values = {
        "namespace": "acme",
        "repository": "web",
        "uuid": known.notification,
        "delivery_id": known.delivery,
    }
    url = path
    for name, valid in known_values.items():
        if "{" + name + "}" in url:
            url = url.replace("{" + name + "}", segment(maybe(data, valid, HOSTILE_TEXT, name)))
    body: Any = None
    if path.rstrip("/").endswith("/notification") and method == "POST":
        body = data.draw(CREATE, label="create body")
    elif path.endswith("/events"):
        body = data.draw(EMIT, label="event body")
    elif path.rstrip("/").endswith("/recover"):
        body = data.draw(RECOVER, label="recover body")
    content = None if body is None else json.dumps(body).encode()
    content = maybe(data, content, st.binary(max_size=100) | VALUES.map(json.dumps), "body")
    token = known.producer if path.endswith("/events") else known.admin
    headers = {
        "Content-Type": maybe(data, "application/json", HEADER_TEXT, "content type"),
        "X-Request-ID": data.draw(HEADER_TEXT, label="request id"),
    }
    query = data.draw(
        st.dictionaries(
            st.sampled_from(["status", "limit", "cursor"]) | HOSTILE_TEXT,
            st.sampled_from([*DeliveryStatus, "1", "0", "-1", "10" * 30]) | HOSTILE_TEXT,
            max_size=2,
        ),
        label="query",
    )
    if query:
        url += "?" + "&".join(f"{segment(key)}={segment(value)}" for key, value in query.items())
    authorization = maybe(data, f"Bearer {token}", HEADER_TEXT, "authorization")
    send(target, method, url, content, authorization, headers)


def send(
    target: Target,
    method: str,
    url: str,
    content: str | bytes | None,
    authorization: str,
    headers: dict[str, str],
) -> None:
    """Send one request; assert no 5xx, and no change in the database unless it succeeded
    (after a success the database is seeded afresh, so every example starts the same)."""
    server = target.server
    before = snapshot(server)
    if isinstance(content, str):
        content = content.encode("utf-8", "surrogatepass")
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        response = http.request(
            method, url, content=content, headers={**headers, "Authorization": authorization}
        )
    assert response.status_code < 500, (method, url, content, response.text)
    if response.status_code >= 400:
        assert snapshot(server) == before, (method, url, content, response.text)
    else:
        empty_tables(server.runtime)
        target.state = seed(server)
