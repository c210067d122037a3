"""``dispatcher notifications|deliveries`` through the installed command, on SQLite and a
per-run PostgreSQL database."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from dispatcher.db import upgrade
from dispatcher.models import Delivery, Notification, utcnow
from dispatcher.runtime import Runtime, create_runtime
from tests.cli.conftest import CLI, COMMAND
from tests.conftest import BACKENDS, fresh_database_url, settings_for
from tests.deliverylog import add_delivery, add_notification

SLACK = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX"
WEBHOOK = "https://example.com/hook?token=s3cr3t"
SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


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

    result, failing, disabled, web, unknown = cli.at_once(
        ["notifications", "list"],
        ["notifications", "list", "--failing", "--json"],
        ["notifications", "list", "--disabled", "--json"],
        ["notifications", "list", "--repo", "acme/web", "--json"],
        ["notifications", "list", "--repo", "acme/nope"],
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["REPO", "UUID", "EVENT", "METHOD", "TARGET", "FAILURES", "STATUS"]
    assert len(lines) == 4
    for secret in ("s3cr3t", "XXXXsecretXXXX", "T000", SIGNING, "whsec_"):
        assert secret not in result.stdout
    assert "https://example.com/hook?***" in result.stdout
    assert "https://hooks.slack.com/***" in result.stdout
    assert "ops@example.com" in result.stdout

    failing_rows = json.loads(failing.stdout)
    assert sorted(row["uuid"] for row in failing_rows) == sorted([uuids["slack"], uuids["email"]])
    disabled_rows = json.loads(disabled.stdout)
    assert [(row["uuid"], row["status"]) for row in disabled_rows] == [(uuids["slack"], "disabled")]
    web_rows = json.loads(web.stdout)
    assert {row["repository"] for row in web_rows} == {"acme/web"} and len(web_rows) == 2
    assert_clean_error(unknown, "acme/nope not found")


def test_reset_named_and_unknown_uuids(database: Runtime, cli: CLI) -> None:
    uuids = seed_three(database)

    partial, usage = cli.at_once(
        ["notifications", "reset", uuids["slack"], "no-such-uuid"], ["notifications", "reset"]
    )
    assert_clean_error(partial, "No notification with uuid no-such-uuid")
    assert failures(database)[uuids["slack"]] == (3, False)
    assert usage.returncode == 2 and "--all-disabled" in usage.stderr

    done = cli("notifications", "reset", uuids["slack"], uuids["email"])
    assert "reset 2 notifications" in done.stdout
    state = failures(database)
    assert state[uuids["slack"]] == (0, True) and state[uuids["email"]] == (0, True)


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

    table, failed_only, first_page, no_notification, no_delivery, bad_limit = cli.at_once(
        ["deliveries", "list", uuid],
        ["deliveries", "list", uuid, "--status", "failed", "--json"],
        ["deliveries", "list", uuid, "--limit", "2", "--json"],
        ["deliveries", "list", "no-such-uuid"],
        ["deliveries", "redeliver", "no-such-id"],
        ["deliveries", "list", uuid, "--limit", "0"],
    )
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split()[:4] == ["ID", "KIND", "STATUS", "ATTEMPTS"]
    assert failed in table.stdout and "HTTP 503 from example.com" in table.stdout
    assert_clean_error(no_notification, "No notification with uuid")
    assert_clean_error(no_delivery, "No delivery no-such-id")
    assert_clean_error(bad_limit, "limit must be between 1 and")

    only_failed = json.loads(failed_only.stdout)
    assert [item["id"] for item in only_failed["deliveries"]] == [failed]
    assert len(only_failed["deliveries"][0]["attempts"]) == 3
    first = json.loads(first_page.stdout)
    assert len(first["deliveries"]) == 2 and first["next_cursor"]
    rest = json.loads(
        cli("deliveries", "list", uuid, "--cursor", first["next_cursor"], "--json").stdout
    )
    assert len(rest["deliveries"]) == 1 and rest["next_cursor"] is None

    again = cli("deliveries", "redeliver", failed)
    new_id = again.stdout.split()[2]
    with database.sessions() as session:
        new = session.get(Delivery, new_id)
        assert new is not None and (new.kind, new.status) == ("redelivery", "pending")


def test_deliveries_recover_sends_a_window_again_once(database: Runtime, cli: CLI) -> None:
    hour_ago = utcnow() - timedelta(hours=1)
    with database.sessions.begin() as session:
        notification = add_notification(session, failures=3, disabled=True)
        uuid = notification.uuid
        failed = add_delivery(session, notification, status="failed", finished_at=hour_ago)
        skipped = add_delivery(session, notification, status="skipped", finished_at=hour_ago)
        old = add_delivery(
            session, notification, status="failed", finished_at=hour_ago - timedelta(hours=2)
        )
        add_delivery(session, notification, finished_at=hour_ago)  # succeeded
        originals = {failed.id, skipped.id}

    iso = (hour_ago - timedelta(hours=3)).isoformat()
    older = cli("deliveries", "recover", uuid, "--since", iso, "--until", "2h")
    recent = json.loads(cli("deliveries", "recover", uuid, "--since", "2h", "--json").stdout)
    again = json.loads(cli("deliveries", "recover", uuid, "--since", "2h", "--json").stdout)

    assert older.stdout == f"recovered 1 delivery of {uuid}\n"
    assert recent["recovered"] == 2
    assert again == {"recovered": 0, "delivery_ids": []}
    with database.sessions() as session:
        made = {
            row.recovers_id: row
            for row in session.scalars(select(Delivery).where(Delivery.recovers_id.is_not(None)))
        }
    assert set(made) == {*originals, old.id}
    assert sorted(recent["delivery_ids"]) == sorted(made[i].id for i in originals)
    assert {row.kind for row in made.values()} == {"redelivery"}


@pytest.mark.parametrize(
    "command",
    [
        ("notifications",),
        ("notifications", "list"),
        ("notifications", "reset"),
        ("deliveries",),
        ("deliveries", "list"),
        ("deliveries", "redeliver"),
        ("deliveries", "recover"),
    ],
)
def test_help(command: tuple[str, ...], tmp_path: Path) -> None:
    result = subprocess.run(
        [COMMAND, *command, "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0
    assert "usage: dispatcher " + " ".join(command) in result.stdout


def test_a_closed_stdout_ends_quietly(database: Runtime, cli: CLI) -> None:
    """``dispatcher deliveries list UUID --json | head -1``: the reader is gone before the
    command writes; it ends with SIGPIPE's status and says nothing."""
    with database.sessions.begin() as session:
        notification = add_notification(session)
        add_delivery(session, notification)
    with subprocess.Popen(
        [COMMAND, "deliveries", "list", notification.uuid, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "DISPATCHER_DATABASE_URL": cli.database_url},
        cwd=cli.cwd,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        stderr = process.stderr.read()
    assert process.returncode == 141
    assert stderr == b""


def test_emit_counts_its_deliveries_in_words(database: Runtime, cli: CLI) -> None:
    with database.sessions.begin() as session:
        add_notification(session)
    data = ["--data", '{"updated_tags": ["v1"]}']
    assert cli("emit", "acme/web", "repo_push", *data).stdout.endswith(": 1 delivery queued\n")
    with database.sessions.begin() as session:
        add_notification(session)
    assert cli("emit", "acme/web", "repo_push", *data).stdout.endswith(": 2 deliveries queued\n")


def test_emit_with_an_idempotency_key_reports_once(database: Runtime, cli: CLI) -> None:
    with database.sessions.begin() as session:
        add_notification(session)
    report = ["emit", "acme/web", "repo_push", "--data", "{}", "--idempotency-key", "job-7"]
    first = json.loads(cli(*report, "--json").stdout)
    again = cli(*report)
    replayed = json.loads(cli(*report, "--json").stdout)

    assert first["replayed"] is False and first["deliveries"] == 1
    assert again.stdout == (
        f"event {first['event_id']}: reported before with this key (1 delivery); nothing new\n"
    )
    assert replayed == {**first, "replayed": True}
    with database.sessions() as session:
        assert len(session.scalars(select(Delivery)).all()) == 1
    refused = cli("emit", "acme/web", "repo_push", "--idempotency-key", "two words", check=False)
    assert refused.returncode == 1  # like bad --data: the request is refused
    assert "idempotency key" in refused.stderr
