"""The curl commands of the original API document, pointed at a local server.

The document's getRepoNotification example sends ``-X POST`` to the item path, which is the
reset endpoint; run as written it answers reset's documented 204. The same command without
``-X POST`` is the GET the section describes and answers 200.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from dispatcher.service import repositories
from tests.conftest import LiveServer, MakeToken

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def curl(*args: str) -> tuple[int, str]:
    """Run curl as the document does, returning the status code and the body."""
    result = subprocess.run(
        ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    body, _, code = result.stdout.rpartition("\n")
    return int(code), body


def test_the_documented_commands_answer_as_documented(
    server: LiveServer, make_token: MakeToken
) -> None:
    with server.runtime.sessions.begin() as session:
        repositories.add_repository(session, "acme/web")
    bearer_token = make_token()
    base = server.base_url
    auth = f"Authorization: Bearer {bearer_token}"

    # createRepoNotification: 201
    code, body = curl(
        "-X", "POST",
        "-H", auth,
        "-H", "Content-Type: application/json",
        "--data",
        '{ "event": "repo_push", "method": "webhook", '
        '"config": { "url": "https://hooks.example.com/quay" }, "eventConfig": { } }',
        f"{base}/api/v1/repository/acme/web/notification/",
    )  # fmt: skip
    assert code == 201, body
    uuid = json.loads(body)["uuid"]

    # listRepoNotifications: 200
    code, body = curl("-H", auth, f"{base}/api/v1/repository/acme/web/notification/")
    assert code == 200
    assert [item["uuid"] for item in json.loads(body)["notifications"]] == [uuid]

    # testRepoNotification: 201
    code, body = curl(
        "-X", "POST", "-H", auth, f"{base}/api/v1/repository/acme/web/notification/{uuid}/test"
    )  # fmt: skip
    assert code == 201
    assert json.loads(body) == {}

    # getRepoNotification, as written (POST = resetRepositoryNotificationFailures): 204
    code, body = curl(
        "-X", "POST", "-H", auth, f"{base}/api/v1/repository/acme/web/notification/{uuid}"
    )  # fmt: skip
    assert (code, body) == (204, "")

    # getRepoNotification, as described: 200
    code, body = curl("-H", auth, f"{base}/api/v1/repository/acme/web/notification/{uuid}")
    assert code == 200
    assert json.loads(body)["uuid"] == uuid

    # deleteRepoNotification: 204, then the documented 400 for an unknown uuid
    url = f"{base}/api/v1/repository/acme/web/notification/{uuid}"
    assert curl("-X", "DELETE", "-H", auth, url) == (204, "")
    code, body = curl("-X", "DELETE", "-H", auth, url)
    assert code == 400
    assert json.loads(body)["detail"] == f"No repository notification found for: acme, web, {uuid}"

    # without a token: 401, as documented
    code, _ = curl(f"{base}/api/v1/repository/acme/web/notification/")
    assert code == 401
