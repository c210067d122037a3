"""The permission matrix: who may call each of the six endpoints (SPEC §3, Auth)."""

from __future__ import annotations

import time

import httpx
import pytest

from dispatcher.service import repositories
from tests.conftest import LiveServer, MakeToken

ENDPOINTS = [
    ("GET", "/notification/"),
    ("POST", "/notification/"),
    ("GET", "/notification/{uuid}"),
    ("DELETE", "/notification/{uuid}"),
    ("POST", "/notification/{uuid}"),
    ("POST", "/notification/{uuid}/test"),
]
BODY = {
    "event": "repo_push",
    "method": "webhook",
    "config": {"url": "http://example.com"},
    "eventConfig": {},
}


@pytest.fixture
def existing(http: httpx.Client, server: LiveServer, make_token: MakeToken) -> str:
    with server.runtime.sessions.begin() as session:
        repositories.add_repository(session, "acme/web")
    owner = {"Authorization": f"Bearer {make_token()}"}
    response = http.post("/api/v1/repository/acme/web/notification/", json=BODY, headers=owner)
    assert response.status_code == 201
    uuid: str = response.json()["uuid"]
    return uuid


def call(
    http: httpx.Client, verb: str, path: str, uuid: str, headers: dict[str, str]
) -> httpx.Response:
    url = "/api/v1/repository/acme/web" + path.format(uuid=uuid)
    return http.request(verb, url, headers=headers, json=BODY if verb == "POST" else None)


def expect_all(
    http: httpx.Client, uuid: str, headers: dict[str, str], status: int, error_type: str
) -> None:
    for verb, path in ENDPOINTS:
        response = call(http, verb, path, uuid, headers)
        assert response.status_code == status, (verb, path, response.text)
        body = response.json()
        assert body["error_type"] == error_type
        expected = "Requires authentication" if status == 401 else "Unauthorized"
        assert body["detail"] == expected


def test_anonymous_is_401(http: httpx.Client, existing: str) -> None:
    expect_all(http, existing, {}, 401, "invalid_token")


@pytest.mark.parametrize(
    "header",
    ["Bearer dsp_not-a-real-token", "Bearer", "Basic dXNlcjpwYXNz", "dsp_missing-scheme"],
)
def test_bad_token_is_401(http: httpx.Client, existing: str, header: str) -> None:
    expect_all(http, existing, {"Authorization": header}, 401, "invalid_token")


def test_expired_token_is_401(http: httpx.Client, existing: str, make_token: MakeToken) -> None:
    secret = make_token(expires_in=0.5)
    headers = {"Authorization": f"Bearer {secret}"}
    assert call(http, "GET", "/notification/", existing, headers).status_code == 200
    time.sleep(0.6)
    expect_all(http, existing, headers, 401, "invalid_token")


def test_revoked_token_is_401(http: httpx.Client, existing: str, make_token: MakeToken) -> None:
    expect_all(
        http,
        existing,
        {"Authorization": f"Bearer {make_token(revoked=True)}"},
        401,
        "invalid_token",
    )


def test_wrong_scope_is_403(http: httpx.Client, existing: str, make_token: MakeToken) -> None:
    secret = make_token(scopes=("events:write",), grants=("*",))
    expect_all(http, existing, {"Authorization": f"Bearer {secret}"}, 403, "insufficient_scope")


def test_grant_on_another_repository_is_403(
    http: httpx.Client, existing: str, make_token: MakeToken
) -> None:
    for grants in (("acme/api",), ("other/*",), ("acme/webx",)):
        secret = make_token(grants=grants)
        expect_all(http, existing, {"Authorization": f"Bearer {secret}"}, 403, "insufficient_scope")


@pytest.mark.parametrize("grant", ["acme/web", "acme/*", "*"])
def test_covering_grants_allow_every_endpoint(
    http: httpx.Client, existing: str, make_token: MakeToken, grant: str
) -> None:
    headers = {"Authorization": f"Bearer {make_token(grants=(grant,))}"}
    expected = {"GET": 200, "DELETE": 204}
    for verb, path in ENDPOINTS:
        if verb == "DELETE":
            continue
        response = call(http, verb, path, existing, headers)
        wanted = expected.get(verb, 204 if path == "/notification/{uuid}" else 201)
        assert response.status_code == wanted, (verb, path, response.text)
    assert call(http, "DELETE", "/notification/{uuid}", existing, headers).status_code == 204


def test_permission_is_checked_before_the_body(
    http: httpx.Client, existing: str, make_token: MakeToken
) -> None:
    headers = {"Authorization": f"Bearer {make_token(grants=('other/*',))}"}
    response = http.post(
        "/api/v1/repository/acme/web/notification/", content=b"not json", headers=headers
    )
    assert response.status_code == 403


def test_star_grant_on_unknown_repository_is_404(
    http: httpx.Client, existing: str, make_token: MakeToken
) -> None:
    headers = {"Authorization": f"Bearer {make_token(grants=('*',))}"}
    response = http.get("/api/v1/repository/acme/ghost/notification/", headers=headers)
    assert response.status_code == 404
