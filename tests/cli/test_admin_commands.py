"""``dispatcher db|tokens|repos`` through the installed command, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from dispatcher.api import create_app
from dispatcher.config import Settings
from dispatcher.db import HEAD_REVISION
from dispatcher.errors import InvalidRequestError
from dispatcher.runtime import create_runtime
from dispatcher.service import notifications, repositories
from tests.cli.conftest import CLI
from tests.conftest import BACKENDS, fresh_database_url


@pytest.fixture(params=BACKENDS)
def run(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_database: Callable[[], str]
) -> CLI:
    """The command on a fresh, not yet migrated database of each backend."""
    return CLI(fresh_database_url(request.param, tmp_path, postgres_database), tmp_path)


@pytest.fixture
def sqlite_run(tmp_path: Path) -> CLI:
    """For input checks that do not depend on the backend."""
    return CLI(f"sqlite:///{tmp_path / 'cli.db'}", tmp_path)


def api_status(database_url: str, secret: str, path: str) -> int:
    runtime = create_runtime(Settings(database_url=database_url))
    try:
        transport = httpx.ASGITransport(app=create_app(runtime))  # type: ignore[arg-type]
        import asyncio

        async def get() -> int:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.get(path, headers={"Authorization": f"Bearer {secret}"})
                return response.status_code

        return asyncio.run(get())
    finally:
        runtime.close()


def test_db_upgrade_is_repeatable(run: CLI) -> None:
    assert "head" in run("db", "upgrade").stdout
    assert run("db", "upgrade").returncode == 0


def test_db_history_current_and_downgrade(run: CLI) -> None:
    history, current = run.at_once(["db", "history"], ["db", "current"])
    assert f"-> {HEAD_REVISION} (head)" in history.stdout
    assert current.returncode == 0 and current.stdout == ""  # an empty database has none
    run("db", "upgrade")
    assert run("db", "current").stdout.strip() == f"{HEAD_REVISION} (head)"
    assert "at revision base" in run("db", "downgrade", "base").stdout
    assert run("db", "current").stdout == ""
    run("repos", "add", "acme/web")  # a command upgrades an emptied database again


def test_token_lifecycle(run: CLI) -> None:
    run("repos", "add", "acme/web")
    created = run(
        "tokens", "create", "--scope", "repo:admin", "--repo", "acme/web",
        "--repo", "acme/*", "--expires-in", "30d", "--name", "ci",
    )  # fmt: skip
    secret = created.stdout.strip()
    assert secret.startswith("dsp_")
    assert "\n" not in secret and created.stderr == ""
    path = "/api/v1/repository/acme/web/notification/"
    assert api_status(run.database_url, secret, path) == 200

    as_json, as_table = run.at_once(["tokens", "list", "--json"], ["tokens", "list"])
    listed = json.loads(as_json.stdout)
    assert len(listed) == 1
    assert listed[0]["name"] == "ci"
    assert listed[0]["scopes"] == ["repo:admin"]
    assert listed[0]["repos"] == ["acme/web", "acme/*"]
    assert listed[0]["state"] == "active"
    assert as_table.returncode == 0 and "ci" in as_table.stdout
    assert secret not in as_table.stdout and secret not in json.dumps(listed)

    run("tokens", "revoke", str(listed[0]["id"]))
    assert json.loads(run("tokens", "list", "--json").stdout)[0]["state"] == "revoked"
    assert api_status(run.database_url, secret, path) == 401


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scope", "repo:admin", "--repo", "Acme Web"], "Invalid repository grant"),
        (["--scope", "repo:admin", "--repo", "acme/web", "--expires-in", "soon"], "--expires-in"),
        (["--scope", "root", "--repo", "acme/web"], "invalid choice"),
        (["--scope", "repo:admin"], "--repo"),
    ],
)
def test_token_create_rejects_bad_input_clearly(
    sqlite_run: CLI, args: list[str], message: str
) -> None:
    result = sqlite_run("tokens", "create", *args, check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_revoking_an_unknown_token_fails_cleanly(sqlite_run: CLI) -> None:
    result = sqlite_run("tokens", "revoke", "999", check=False)
    assert result.returncode == 1
    assert "No token with id 999" in result.stderr


def test_repos_add_list_remove(run: CLI) -> None:
    assert "added" in run("repos", "add", "acme/web").stdout
    assert "already registered" in run("repos", "add", "acme/web").stdout
    run("repos", "add", "acme/api")
    listed = json.loads(run("repos", "list", "--json").stdout)
    assert [row["repository"] for row in listed] == ["acme/api", "acme/web"]
    assert "removed" in run("repos", "remove", "acme/web").stdout
    after, missing, bad = run.at_once(
        ["repos", "list", "--json"], ["repos", "remove", "acme/web"], ["repos", "add", "no-slash"]
    )
    assert [row["repository"] for row in json.loads(after.stdout)] == ["acme/api"]
    assert missing.returncode == 1
    assert "not found" in missing.stderr
    assert bad.returncode == 1
    assert "Invalid repository" in bad.stderr


def test_emails_authorize_lets_email_notifications_be_created(run: CLI) -> None:
    run("repos", "add", "acme/web")
    done = run("emails", "authorize", "acme/web", "ops@example.com")
    assert done.stdout == "ops@example.com authorized for acme/web\n"
    again, unknown, invalid, unparsed = run.at_once(
        ["emails", "authorize", "acme/web", "ops@example.com"],
        ["emails", "authorize", "acme/nope", "ops@example.com"],
        ["emails", "authorize", "acme/web", "ops"],
        ["emails", "authorize", "no-slash", "ops@example.com"],
    )
    assert again.stdout == "ops@example.com already authorized for acme/web\n"
    assert (unknown.returncode, unknown.stderr) == (
        1,
        "dispatcher: Repository acme/nope not found\n",
    )
    assert (invalid.returncode, invalid.stderr) == (1, "dispatcher: Invalid e-mail address\n")
    assert unparsed.returncode == 1 and "Invalid repository" in unparsed.stderr

    runtime = create_runtime(Settings(database_url=run.database_url))
    try:
        with runtime.sessions.begin() as session:
            repository = repositories.get_repository(session, "acme", "web")
            for address, allowed in (("ops@example.com", True), ("dev@example.com", False)):
                try:
                    notifications.create_notification(
                        session,
                        repository,
                        event="repo_push",
                        method="email",
                        config={"email": address},
                        event_config={},
                        title=None,
                        settings=runtime.settings,
                    )
                except InvalidRequestError as exc:
                    assert not allowed, exc.message
                else:
                    assert allowed, address
    finally:
        runtime.close()


def test_help_and_module_entry_point(sqlite_run: CLI) -> None:
    helps = sqlite_run.at_once(
        ["--help"], ["tokens", "create", "--help"], ["repos", "--help"], ["emails", "--help"]
    )
    for result in helps:
        assert result.returncode == 0
        assert "usage: dispatcher" in result.stdout
    module = subprocess.run(
        [sys.executable, "-m", "dispatcher", "--version"], capture_output=True, text=True
    )
    assert module.stdout.startswith("dispatcher ")


SERVICE_STACKS = {"fastapi", "starlette", "uvicorn", "celery", "kombu", "httpx", "jinja2"}


def test_simple_commands_load_only_what_they_use(sqlite_run: CLI) -> None:
    sqlite_run("db", "upgrade")
    helped = sqlite_run.packages_imported("tokens", "create", "--help")
    assert "dispatcher" in helped
    assert not helped & (SERVICE_STACKS | {"sqlalchemy", "pydantic"})
    listed = sqlite_run.packages_imported("repos", "list")
    assert "sqlalchemy" in listed
    # the schema is current, so the migration machinery stays unloaded too
    assert not listed & (SERVICE_STACKS | {"alembic", "email_validator"})


def test_bad_settings_are_reported_by_name(sqlite_run: CLI) -> None:
    env = {"DISPATCHER_MAX_FAILURES": "0", "DISPATCHER_RETRY_SCHEDULE": "soon"}
    result = sqlite_run("repos", "list", env=env, check=False)
    assert result.returncode == 2
    assert "DISPATCHER_MAX_FAILURES" in result.stderr
    assert "DISPATCHER_RETRY_SCHEDULE" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    unreachable = CLI("postgresql+psycopg://postgres@127.0.0.1:1/x", tmp_path)
    result = unreachable("repos", "list", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("dispatcher: database error:")
    assert "Traceback" not in result.stderr
