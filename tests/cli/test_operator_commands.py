"""``dispatcher notifications|deliveries`` through the installed command, on SQLite and a
per-run PostgreSQL database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from dispatcher.db import upgrade
from dispatcher.models import Delivery, Notification
from dispatcher.runtime import Runtime, create_runtime
from tests.conftest import BACKENDS, fresh_database_url, settings_for
from tests.deliverylog import add_delivery, add_notification

COMMAND = str(Path(sys.executable).parent / "dispatcher")
SLACK = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX"
WEBHOOK = "https://example.com/hook?token=s3cr3t"
SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class CLI:
    def __init__(self, url: str, cwd: Path) -> None:
        self.url = url
        self.cwd = cwd

    def __call__(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [COMMAND, *args],
            capture_output=True,
            text=True,
            env={**os.environ, "DISPATCHER_DATABASE_URL": self.url, **(env or {})},
            timeout=60,
            cwd=self.cwd,
        )


@pytest.fixture(params=BACKENDS)
def database(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_database: Callable[[], str]
) -> Iterator[Runtime]:
    url = fresh_database_url(request.param, tmp_path, postgres_database)
    upgrade(url)
    runtime = create_runtime(settings_for(url))
    yield runtime
    runtime.close()


@pytest.fixture
def cli(database: Runtime, tmp_path: Path) -> CLI:
    return CLI(database.settings.database_url, tmp_path)


def seed_three(runtime: Runtime) -> dict[str, str]:
    with runtime.sessions.begin() as session:
        hook = add_notification(session, config={"url": WEBHOOK, "secret": SIGNING})
        slack = add_notification(
            session, "acme/api", method="slack", config={"url": SLACK}, failures=3, disabled=True
        )
        mail = add_notification(
            session, method="email", config={"email": "ops@example.com"}, failures=1
        )
        return {"webhook": hook.uuid, "slack": slack.uuid, "email": mail.uuid}


def failures(runtime: Runtime) -> dict[str, tuple[int, bool]]:
    with runtime.sessions() as session:
        return {
            item.uuid: (item.number_of_failures, item.enabled)
            for item in session.scalars(select(Notification))
        }


def assert_clean_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 1, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_list_masks_targets_and_filters(database: Runtime, cli: CLI) -> None:
    uuids = seed_three(database)

    result = cli("notifications", "list")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["REPO", "UUID", "EVENT", "METHOD", "TARGET", "FAILURES", "STATUS"]
    assert len(lines) == 4
    for secret in ("s3cr3t", "XXXXsecretXXXX", "T000", SIGNING, "whsec_"):
        assert secret not in result.stdout
    assert "https://example.com/hook?***" in result.stdout
    assert "https://hooks.slack.com/***" in result.stdout
    assert "ops@example.com" in result.stdout

    failing = json.loads(cli("notifications", "list", "--failing", "--json").stdout)
    assert sorted(row["uuid"] for row in failing) == sorted([uuids["slack"], uuids["email"]])
    disabled = json.loads(cli("notifications", "list", "--disabled", "--json").stdout)
    assert [(row["uuid"], row["status"]) for row in disabled] == [(uuids["slack"], "disabled")]
    web = json.loads(cli("notifications", "list", "--repo", "acme/web", "--json").stdout)
    assert {row["repository"] for row in web} == {"acme/web"} and len(web) == 2
    assert_clean_error(cli("notifications", "list", "--repo", "acme/nope"), "acme/nope not found")


def test_reset_named_and_unknown_uuids(database: Runtime, cli: CLI) -> None:
    uuids = seed_three(database)

    partial = cli("notifications", "reset", uuids["slack"], "no-such-uuid")
    assert_clean_error(partial, "No notification with uuid no-such-uuid")
    assert failures(database)[uuids["slack"]] == (3, False)

    done = cli("notifications", "reset", uuids["slack"], uuids["email"])
    assert done.returncode == 0, done.stderr
    assert "reset 2 notification(s)" in done.stdout
    state = failures(database)
    assert state[uuids["slack"]] == (0, True) and state[uuids["email"]] == (0, True)

    usage = cli("notifications", "reset")
    assert usage.returncode == 2 and "--all-disabled" in usage.stderr


def test_reset_all_disabled_shows_progress(database: Runtime, cli: CLI) -> None:
    with database.sessions.begin() as session:
        for _ in range(120):
            add_notification(session, failures=3, disabled=True)
        other = add_notification(session, "acme/api", failures=3, disabled=True).uuid

    result = cli(
        "notifications",
        "reset",
        "--all-disabled",
        "--repo",
        "acme/web",
        env={"DISPATCHER_CLI_PROGRESS_EVERY": "50"},
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["reset 50/120", "reset 100/120", "reset 120/120"]
    state = failures(database)
    assert state.pop(other) == (3, False)
    assert set(state.values()) == {(0, True)}


def test_deliveries_list_and_redeliver(database: Runtime, cli: CLI) -> None:
    with database.sessions.begin() as session:
        notification = add_notification(session)
        uuid = notification.uuid
        failed = add_delivery(session, notification, status="failed", attempts=3).id
        for _ in range(2):
            add_delivery(session, notification)

    table = cli("deliveries", "list", uuid)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split()[:4] == ["ID", "KIND", "STATUS", "ATTEMPTS"]
    assert failed in table.stdout and "HTTP 503 from example.com" in table.stdout

    only_failed = json.loads(cli("deliveries", "list", uuid, "--status", "failed", "--json").stdout)
    assert [item["id"] for item in only_failed["deliveries"]] == [failed]
    assert len(only_failed["deliveries"][0]["attempts"]) == 3
    first = json.loads(cli("deliveries", "list", uuid, "--limit", "2", "--json").stdout)
    assert len(first["deliveries"]) == 2 and first["next_cursor"]
    rest = json.loads(
        cli("deliveries", "list", uuid, "--cursor", first["next_cursor"], "--json").stdout
    )
    assert len(rest["deliveries"]) == 1 and rest["next_cursor"] is None

    again = cli("deliveries", "redeliver", failed)
    assert again.returncode == 0, again.stderr
    new_id = again.stdout.split()[2]
    with database.sessions() as session:
        new = session.get(Delivery, new_id)
        assert new is not None and (new.kind, new.status) == ("redelivery", "pending")

    assert_clean_error(cli("deliveries", "list", "no-such-uuid"), "No notification with uuid")
    assert_clean_error(cli("deliveries", "redeliver", "no-such-id"), "No delivery no-such-id")
    bad = cli("deliveries", "list", uuid, "--limit", "0")
    assert_clean_error(bad, "limit must be between 1 and")


@pytest.mark.parametrize(
    "command",
    [
        ("notifications",),
        ("notifications", "list"),
        ("notifications", "reset"),
        ("deliveries",),
        ("deliveries", "list"),
        ("deliveries", "redeliver"),
    ],
)
def test_help(command: tuple[str, ...], tmp_path: Path) -> None:
    result = subprocess.run(
        [COMMAND, *command, "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0
    assert "usage: dispatcher " + " ".join(command) in result.stdout
