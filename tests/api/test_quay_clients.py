"""The requests Quay's Ansible collection (infra.quay_configuration 2.8.1, module
``quay_notification``) makes, in its order, with the headers it sends and the fields it reads,
on SQLite and PostgreSQL. The collection is not on PyPI; these replay what it does:

every task:  GET /user/ (reads ``username``), GET /organization/{ns} (any non-empty object
             means "namespace exists"; on 404 it tries /user/robots/{ns} then /entities/{ns}),
             GET …/notification/ (matches ``title``, reads ``uuid``, ``number_of_failures``)
create:      GET /repository/{ns}/{repo} (non-empty = exists), POST …/notification/ with both
             ``eventConfig`` and ``event_config``, reads ``uuid`` of the answer
test:        POST …/notification/{uuid}/test with body ``{}`` (200, 201 or 204 is success)
reset:       only when ``number_of_failures`` is not 0: POST …/notification/{uuid} with ``{}``
absent:      DELETE …/notification/{uuid} (2xx = changed, 400/404 = unchanged)

A request answered otherwise makes the module fail: each step asserts what it accepts.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import update

from dispatcher.models import Notification
from dispatcher.service import authorized_emails, repositories
from tests.conftest import LiveServer, MakeToken

REPO = "repository/acme/web"
CREATED = (200, 201, 204)


class Collection:
    """The collection's HTTP conversation, step by step (its own session headers)."""

    def __init__(self, http: httpx.Client, token: str) -> None:
        self.http = http
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    def get(self, endpoint: str, ok: tuple[int, ...] = (200, 404)) -> dict[str, Any] | None:
        response = self.http.get(f"/api/v1/{endpoint}", headers=self.headers)
        assert response.status_code in ok, (endpoint, response.status_code, response.text)
        if response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        return body

    def post(self, endpoint: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(f"/api/v1/{endpoint}", headers=self.headers, json=body)

    def start_task(self, namespace: str = "acme") -> list[dict[str, Any]]:
        """What every task does first; returns the repository's notifications."""
        user = self.get("user/")
        assert user is not None and user["username"] == "ansible"
        organization = self.get(f"organization/{namespace}")
        assert organization, "the collection reads an empty answer as 'no such namespace'"
        listing = self.get(f"{REPO}/notification/")
        assert listing is not None
        notifications: list[dict[str, Any]] = listing["notifications"]
        for item in notifications:
            assert {"uuid", "title", "event", "method", "number_of_failures"} <= set(item)
        return notifications

    def find(self, title: str) -> list[dict[str, Any]]:
        return [item for item in self.start_task() if item.get("title", "") == title]

    def ensure(self, title: str, event: str, method: str, **fields: Any) -> tuple[bool, str]:
        """state: present; returns (changed, uuid)."""
        found = self.find(title)
        if found:
            return False, found[0]["uuid"]
        assert self.get(REPO), "an empty answer reads as 'repository does not exist'"
        body = {"eventConfig": {}, "event_config": {}, "config": {}, **fields}
        body.update(title=title, event=event, method=method)
        response = self.post(f"{REPO}/notification/", body)
        assert response.status_code in CREATED, response.text
        uuid: str = response.json()["uuid"]
        return True, uuid

    def test(self, uuid: str) -> None:
        response = self.post(f"{REPO}/notification/{uuid}/test", {})
        assert response.status_code in CREATED, response.text

    def reset(self, title: str) -> bool:
        changed = False
        for item in self.find(title):
            if item.get("number_of_failures", 0):
                response = self.post(f"{REPO}/notification/{item['uuid']}", {})
                assert response.status_code in CREATED, response.text
                changed = True
        return changed

    def absent(self, title: str) -> bool:
        changed = False
        for item in self.find(title):
            url = f"/api/v1/{REPO}/notification/{item['uuid']}"
            response = self.http.delete(url, headers=self.headers)
            assert response.status_code in (200, 201, 202, 204, 400, 404), response.text
            changed = changed or response.status_code < 300
        return changed


@pytest.fixture
def collection(http: httpx.Client, server: LiveServer, make_token: MakeToken) -> Collection:
    with server.runtime.sessions.begin() as session:
        repository, _ = repositories.add_repository(session, "acme/web")
        # e-mail notifications need the address authorized first, as on Quay
        authorized_emails.authorize(session, repository, "ops@example.com", server.runtime.settings)
    return Collection(http, make_token(grants=("acme/*",), name="ansible"))


TASKS: list[tuple[str, str, str, dict[str, Any], dict[str, Any]]] = [
    (
        "Push webhook",
        "repo_push",
        "webhook",
        {
            "config": {
                "url": "https://hooks.example.com/push",
                "template": '{"repo": "${repository}", "tags": "${updated_tags}"}',
            }
        },
        {},
    ),
    (
        "Builds to Slack",
        "build_failure",
        "slack",
        {"config": {"url": "https://hooks.slack.com/services/T0/B0/XYZ"}},
        {},
    ),
    (
        "Mirror mail",
        "repo_mirror_sync_failed",
        "email",
        {"config": {"email": "ops@example.com"}},
        {},
    ),
    (
        "High vulnerabilities",
        "vulnerability_found",
        "webhook",
        # vulnerability_level: high, sent as the index in a string, under both keys
        {
            "config": {"url": "https://hooks.example.com/vuln"},
            "eventConfig": {"level": "1"},
            "event_config": {"level": "1"},
        },
        {"level": "1"},
    ),
    (
        "Expiring images",
        "repo_image_expiry",
        "slack",
        {
            "config": {"url": "https://hooks.slack.com/services/T0/B0/XYZ"},
            "eventConfig": {"days": 5},
            "event_config": {"days": 5},
        },
        {"days": 5},
    ),
]


@pytest.mark.parametrize(
    ("title", "event", "method", "fields", "stored"), TASKS, ids=[t[0] for t in TASKS]
)
def test_a_task_creates_tests_and_is_unchanged_when_run_again(
    collection: Collection,
    server: LiveServer,
    title: str,
    event: str,
    method: str,
    fields: dict[str, Any],
    stored: dict[str, Any],
) -> None:
    changed, uuid = collection.ensure(title, event, method, **fields)
    assert changed
    collection.test(uuid)  # test: true
    (view,) = collection.find(title)
    assert (view["uuid"], view["event"], view["method"]) == (uuid, event, method)
    assert view["config"] == fields["config"]
    assert view["event_config"] == stored
    assert collection.ensure(title, event, method, **fields) == (False, uuid)
    assert len(collection.start_task()) == 1


def test_reset_failcount_only_when_there_are_failures(
    collection: Collection, server: LiveServer
) -> None:
    _, uuid = collection.ensure(
        "Failing hook", "repo_push", "webhook", config={"url": "https://hooks.example.com/x"}
    )
    assert collection.reset("Failing hook") is False
    with server.runtime.sessions.begin() as session:
        session.execute(
            update(Notification).where(Notification.uuid == uuid).values(number_of_failures=2)
        )
    assert collection.reset("Failing hook") is True
    assert collection.find("Failing hook")[0]["number_of_failures"] == 0
    assert collection.reset("Failing hook") is False


def test_state_absent_deletes_once(collection: Collection) -> None:
    collection.ensure("Old hook", "repo_push", "webhook", config={"url": "https://e.example/x"})
    assert collection.absent("Old hook") is True
    assert collection.absent("Old hook") is False
    assert collection.start_task() == []


def test_deleting_a_uuid_already_gone_reads_as_unchanged(collection: Collection) -> None:
    _, uuid = collection.ensure("Gone", "repo_push", "webhook", config={"url": "https://e.x/y"})
    url = f"/api/v1/{REPO}/notification/{uuid}"
    assert collection.http.delete(url, headers=collection.headers).status_code == 204
    assert collection.http.delete(url, headers=collection.headers).status_code == 400


def test_an_unauthorized_address_fails_with_quays_message(collection: Collection) -> None:
    collection.start_task()
    response = collection.post(
        f"{REPO}/notification/",
        {
            "title": "Stranger",
            "event": "repo_push",
            "method": "email",
            "config": {"email": "stranger@example.com"},
            "eventConfig": {},
            "event_config": {},
        },
    )
    assert response.status_code == 400
    body = response.json()
    # the collection prints title, error_type and error_message
    assert (body["title"], body["error_type"]) == ("invalid_request", "invalid_request")
    assert body["error_message"] == authorized_emails.NOT_AUTHORIZED


def test_absent_in_a_namespace_without_repositories_reads_as_unchanged(
    http: httpx.Client, server: LiveServer, make_token: MakeToken
) -> None:
    client = Collection(http, make_token(grants=("*",), name="ansible"))
    assert client.get("user/") is not None
    # no organization, no robot account, no user entity: the module exits "unchanged"
    assert client.get("organization/nobody") is None
    assert client.get("user/robots/nobody", ok=(400, 404)) is None
    assert client.get("entities/nobody?includeOrgs=False&includeTeams=False") is None
