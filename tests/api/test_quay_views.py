"""Quay's account views: GET /user/, /organization/{ns}, /repository/{ns}/{repo}, on SQLite
and PostgreSQL, with the notification endpoints' auth and error rules."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from dispatcher.service import repositories
from tests.conftest import LiveServer, MakeToken

PROBLEM_KEYS = {"detail", "error_message", "error_type", "title", "type", "status"}


@pytest.fixture
def registered(server: LiveServer) -> None:
    with server.runtime.sessions.begin() as session:
        for name in ("acme/web", "acme/api", "beta/site", "zeta/x"):
            repositories.add_repository(session, name)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def assert_problem(response: httpx.Response, status: int, error_type: str) -> None:
    assert response.status_code == status, response.text
    assert set(response.json()) == PROBLEM_KEYS
    assert response.json()["error_type"] == error_type


# -- GET /api/v1/user/ -------------------------------------------------------------------------


def test_user_view_names_the_token_and_lists_the_namespaces_it_reaches(
    http: httpx.Client, registered: None, make_token: MakeToken
) -> None:
    token = make_token(grants=("acme/*", "beta/site", "gamma/*"), name="ci-bot")
    response = http.get("/api/v1/user/", headers=bearer(token))
    assert response.status_code == 200
    view = response.json()
    assert view["username"] == "ci-bot"
    assert view["anonymous"] is False
    assert view["super_user"] is False
    assert view["is_me"] is True
    assert view["can_create_repo"] is False
    assert view["avatar"] == {
        "name": "ci-bot",
        "hash": hashlib.sha256(b"ci-bot").hexdigest(),
        "color": "#8c6d31",
        "kind": "user",
    }
    # gamma has no repository here; zeta is not granted
    organizations = view["organizations"]
    assert [org["name"] for org in organizations] == ["acme", "beta"]
    acme, beta = organizations
    assert acme["is_org_admin"] is True
    assert beta["is_org_admin"] is False
    assert acme["avatar"]["kind"] == "org"
    assert acme["avatar"]["color"] == "#ff7f0e"
    for org in organizations:
        assert (org["can_create_repo"], org["public"], org["preferred_namespace"]) == (
            False,
            False,
            False,
        )


def test_user_view_without_a_token_name_and_for_every_grant(
    http: httpx.Client, registered: None, make_token: MakeToken
) -> None:
    token = make_token(scopes=("events:write",), grants=("*",))
    view = http.get("/api/v1/user", headers=bearer(token)).json()
    assert view["username"].startswith("token-")
    assert [org["name"] for org in view["organizations"]] == ["acme", "beta", "zeta"]
    # events:write alone administers nothing
    assert not any(org["is_org_admin"] for org in view["organizations"])


@pytest.mark.parametrize("headers", [{}, bearer("dsp_unknown"), {"Authorization": "Basic x"}])
def test_user_view_needs_a_valid_token(
    http: httpx.Client, registered: None, headers: dict[str, str]
) -> None:
    assert_problem(http.get("/api/v1/user/", headers=headers), 401, "invalid_token")


def test_user_view_refuses_expired_and_revoked_tokens(
    http: httpx.Client, make_token: MakeToken
) -> None:
    for token in (make_token(expires_in=-1), make_token(revoked=True)):
        assert_problem(http.get("/api/v1/user/", headers=bearer(token)), 401, "invalid_token")


# -- GET /api/v1/organization/{ns} -------------------------------------------------------------


def test_organization_view_of_a_namespace_with_repositories(
    http: httpx.Client, registered: None, make_token: MakeToken
) -> None:
    admin = bearer(make_token(grants=("acme/*",)))
    response = http.get("/api/v1/organization/acme", headers=admin)
    assert response.status_code == 200
    assert response.json() == {
        "name": "acme",
        "email": "",
        "avatar": {
            "name": "acme",
            "hash": hashlib.sha256(b"acme").hexdigest(),
            "color": "#ff7f0e",
            "kind": "org",
        },
        "is_admin": True,
        "is_member": True,
        "teams": {},
        "ordered_teams": [],
    }
    assert http.get("/api/v1/organization/acme/", headers=admin).json() == response.json()

    member = bearer(make_token(grants=("acme/web",)))
    assert http.get("/api/v1/organization/acme", headers=member).json()["is_admin"] is False


def test_organization_view_auth_and_errors(
    http: httpx.Client, registered: None, make_token: MakeToken
) -> None:
    assert_problem(http.get("/api/v1/organization/acme"), 401, "invalid_token")
    other = bearer(make_token(grants=("beta/*",)))
    assert_problem(http.get("/api/v1/organization/acme", headers=other), 403, "insufficient_scope")
    producer = bearer(make_token(scopes=("events:write",), grants=("acme/*",)))
    assert_problem(
        http.get("/api/v1/organization/acme", headers=producer), 403, "insufficient_scope"
    )
    everything = bearer(make_token(grants=("*",)))
    missing = http.get("/api/v1/organization/nobody", headers=everything)
    assert_problem(missing, 404, "not_found")
    assert missing.json()["detail"] == "Not Found"


# -- GET /api/v1/repository/{ns}/{repo} --------------------------------------------------------


def test_repository_view(http: httpx.Client, registered: None, make_token: MakeToken) -> None:
    admin = bearer(make_token(grants=("acme/web",)))
    response = http.get("/api/v1/repository/acme/web", headers=admin)
    assert response.status_code == 200
    assert response.json() == {
        "namespace": "acme",
        "name": "web",
        "kind": "image",
        "description": None,
        "is_public": False,
        "is_organization": True,
        "is_starred": False,
        "status_token": "",
        "trust_enabled": False,
        "tag_expiration_s": None,
        "is_free_account": True,
        "state": "NORMAL",
        "can_write": True,
        "can_admin": True,
        "tags": {},
    }
    assert http.get("/api/v1/repository/acme/web/", headers=admin).json() == response.json()
    without_tags = http.get("/api/v1/repository/acme/web?includeTags=false", headers=admin)
    assert "tags" not in without_tags.json()
    assert set(without_tags.json()) == set(response.json()) - {"tags"}
    bad_flag = http.get("/api/v1/repository/acme/web?includeTags=maybe", headers=admin)
    assert_problem(bad_flag, 400, "invalid_request")


def test_repository_view_auth_and_errors(
    http: httpx.Client, registered: None, make_token: MakeToken
) -> None:
    assert_problem(http.get("/api/v1/repository/acme/web"), 401, "invalid_token")
    other = bearer(make_token(grants=("acme/api",)))
    assert_problem(
        http.get("/api/v1/repository/acme/web", headers=other), 403, "insufficient_scope"
    )
    admin = bearer(make_token(grants=("acme/*",)))
    assert_problem(http.get("/api/v1/repository/acme/nope", headers=admin), 404, "not_found")
