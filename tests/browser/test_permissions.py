"""The permission matrix, walked in the browser: for each kind of token, every console page
and action answers as the API answers the same request with that token (the same status for
every refusal; a page or a redirect where the API succeeds). The matrix is written to
``permission-matrix-<backend>.md`` beside the screenshots."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page
from sqlalchemy import update

from dispatcher.models import AccessToken, utcnow
from dispatcher.service import notifications, repositories
from tests.browser.conftest import ConsoleServer

KINDS = [
    "no token",
    "bad token",
    "expired",
    "revoked",
    "wrong scope",
    "other repository",
    "exact grant",
    "ns/*",
    "*",
]


@dataclass(frozen=True)
class Step:
    name: str
    console: tuple[str, str]
    api: tuple[str, str]


def steps(repo: str, uuid: str, delivery: str, twin: str, twin_delivery: str) -> list[Step]:
    """The console's pages and actions in an order that leaves each target in place until
    its own step, with the API request each stands for (on a twin notification)."""
    collection = f"/repository/{repo}/notification/"
    mine, api = collection + uuid, collection + twin
    mine_delivery, api_delivery = (
        f"{mine}/deliveries/{delivery}",
        f"{api}/deliveries/{twin_delivery}",
    )
    return [
        Step("repository page", ("GET", f"/repository/{repo}"), ("GET", collection)),
        Step("create", ("POST", collection), ("POST", collection)),
        Step("notification page", ("GET", mine), ("GET", f"{api}/deliveries")),
        Step("live deliveries", ("GET", f"{mine}/live"), ("GET", f"{api}/deliveries")),
        Step("delivery page", ("GET", mine_delivery), ("GET", api_delivery)),
        Step("live delivery", ("GET", f"{mine_delivery}/live"), ("GET", api_delivery)),
        Step("test", ("POST", f"{mine}/test"), ("POST", f"{api}/test")),
        Step(
            "redeliver",
            ("POST", f"{mine_delivery}/redeliver"),
            ("POST", f"{api_delivery}/redeliver"),
        ),
        Step("reset", ("POST", f"{mine}/reset"), ("POST", api)),
        Step("delete page", ("GET", f"{mine}/delete"), ("GET", api)),
        Step("delete", ("POST", f"{mine}/delete"), ("DELETE", api)),
    ]


CREATE_FORM = {"event": "repo_push", "method": "webhook"}


@pytest.fixture(scope="module")
def matrix(console_server: ConsoleServer, screenshot_dir: Path) -> Iterator[dict[str, list[str]]]:
    rows: dict[str, list[str]] = {}
    yield rows
    names = ["repositories page", *[step.name for step in steps("r", "u", "d", "t", "e")]]
    lines = ["| token | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {kind} | " + " | ".join(rows[kind]) + " |" for kind in KINDS if kind in rows]
    path = screenshot_dir / f"permission-matrix-{console_server.backend}.md"
    path.write_text("\n".join(lines) + "\n")


def notification_with_delivery(server: ConsoleServer, repo: str) -> tuple[str, str]:
    namespace, name = repo.split("/")
    with server.runtime.sessions() as session:
        repository = repositories.get_repository(session, namespace, name)
        notification = notifications.create_notification(
            session,
            repository,
            event="repo_push",
            method="webhook",
            config={"url": server.receiver.url()},
            event_config={},
            title=None,
            settings=server.runtime.settings,
        )
        session.commit()
        delivery = notifications.queue_test(
            session, notification, server.runtime.settings, server.runtime.doorbell
        )
        return notification.uuid, delivery.id


def token_for(kind: str, server: ConsoleServer, repo: str) -> tuple[int | None, str | None]:
    namespace = repo.split("/")[0]
    grants = {
        "wrong scope": ("*",),
        "other repository": ("other/*",),
        "exact grant": (repo,),
        "ns/*": (f"{namespace}/*",),
    }
    if kind == "no token":
        return None, None
    if kind == "bad token":
        return None, "dsp_this-is-not-a-token"
    scopes = ("events:write",) if kind == "wrong scope" else ("repo:admin",)
    return server.token(scopes=scopes, grants=grants.get(kind, ("*",)))


def console_call(page: Page, server: ConsoleServer, verb: str, path: str, csrf: str) -> int:
    """One request with the browser context's cookies (the page's session), as a link or a
    form of the console would send it; its status, redirects not followed."""
    if verb == "GET":
        return page.request.get(server.url("/console" + path), max_redirects=0).status
    form = {"csrf": csrf, **(CREATE_FORM if path.endswith("/notification/") else {})}
    if path.endswith("/notification/"):
        form["config.webhook.url"] = server.receiver.url()
    answer = page.request.post(server.url("/console" + path), form=form, max_redirects=0)
    return answer.status


@pytest.fixture(scope="module")
def api() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def api_call(
    api: httpx.Client, server: ConsoleServer, verb: str, path: str, secret: str | None
) -> int:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    body: dict[str, Any] | None = None
    if verb == "POST" and path.endswith("/notification/"):
        body = {**CREATE_FORM, "config": {"url": server.receiver.url()}, "eventConfig": {}}
    response = api.request(verb, server.url("/api/v1" + path), headers=headers, json=body)
    return response.status_code


def test_console_answers_as_the_api_does(
    console_page: Page,
    console_server: ConsoleServer,
    matrix: dict[str, list[str]],
    api: httpx.Client,
) -> None:
    for kind in KINDS:
        console_page.context.clear_cookies()
        matrix[kind] = walk(kind, console_page, console_server, api)


def walk(kind: str, page: Page, server: ConsoleServer, api: httpx.Client) -> list[str]:
    """Sign in with a token of ``kind`` and take every step; the matrix row it gives."""
    repo = server.repository()
    uuid, delivery = notification_with_delivery(server, repo)
    twin, twin_delivery = notification_with_delivery(server, repo)
    token_id, secret = token_for(kind, server, repo)

    sign_in_page = page.goto(server.url("/console/sign-in"))
    assert sign_in_page is not None and sign_in_page.status == 200
    if secret is not None:
        page.get_by_label("Token").fill(secret)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        assert page.url.endswith("/sign-in") == (kind == "bad token"), (kind, page.url)
    if kind in ("expired", "revoked"):
        change = {"expires_at": utcnow()} if kind == "expired" else {"revoked_at": utcnow()}
        with server.runtime.sessions.begin() as session:
            session.execute(update(AccessToken).where(AccessToken.id == token_id).values(change))

    row: list[str] = []
    home = page.goto(server.url("/console/"))
    assert home is not None
    expected_home = {"no token": 401, "bad token": 401, "expired": 401, "revoked": 401}
    assert home.status == expected_home.get(kind, 403 if kind == "wrong scope" else 200), kind
    listed = repo in page.content()
    assert listed == (kind in ("exact grant", "ns/*", "*")), kind
    row.append(f"{home.status}{' (listed)' if listed else ''}")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value") or ""

    for step in steps(repo, uuid, delivery, twin, twin_delivery):
        console_status = console_call(page, server, *step.console, csrf)
        api_status = api_call(api, server, *step.api, secret)
        if 200 <= api_status < 300:
            assert console_status in (200, 303), (kind, step.name, console_status, api_status)
        else:
            assert console_status == api_status, (kind, step.name, console_status, api_status)
        row.append(f"{console_status} / {api_status}")
    return row
