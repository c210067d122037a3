"""The migrations build the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from dispatcher import models  # noqa: F401
from dispatcher.db import HEAD_REVISION, Base, downgrade, upgrade
from tests.conftest import BACKENDS, fresh_database_url

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_matches_the_models_and_downgrade_undoes_it(
    backend: str, tmp_path: Path, postgres_database: Callable[[], str]
) -> None:
    url = fresh_database_url(backend, tmp_path, postgres_database)
    upgrade(url)
    downgrade(url, "base")
    engine = create_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        upgrade(url)
        upgrade(url)  # a second run is a no-op
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
            assert differences == []
            tables = set(inspect(conn).get_table_names())
        assert {table.name for table in Base.metadata.sorted_tables} <= tables
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_fan_out_and_uuid_lookups_use_one_index(
    backend: str, tmp_path: Path, postgres_database: Callable[[], str]
) -> None:
    url = fresh_database_url(backend, tmp_path, postgres_database)
    upgrade(url)
    engine = create_engine(url)
    try:
        indexes = inspect(engine).get_indexes("notifications")
        uniques = inspect(engine).get_unique_constraints("notifications")
    finally:
        engine.dispose()
    columns = [tuple(index["column_names"]) for index in indexes]
    columns += [tuple(unique["column_names"]) for unique in uniques]
    assert ("repository_id", "event") in columns
    assert ("repository_id", "uuid") in columns


def test_alembic_runs_from_a_checkout(tmp_path: Path) -> None:
    """``alembic`` with the repository's alembic.ini, on DISPATCHER_DATABASE_URL."""
    env = {**os.environ, "DISPATCHER_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}

    def alembic(*args: str) -> str:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "alembic"), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert f"-> {HEAD_REVISION} (head)" in alembic("history")
    alembic("upgrade", "head")
    assert alembic("current").strip() == f"{HEAD_REVISION} (head)"
    alembic("downgrade", "base")
    assert alembic("current").strip() == ""


def test_head_revision_constant_is_the_newest_migration() -> None:
    from alembic.script import ScriptDirectory

    from dispatcher.db import HEAD_REVISION, alembic_config

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert script.get_heads() == [HEAD_REVISION]


@pytest.mark.parametrize("backend", BACKENDS)
def test_0002_authorizes_the_addresses_of_existing_email_notifications(
    backend: str, tmp_path: Path, postgres_database: Callable[[], str]
) -> None:
    from alembic import command
    from sqlalchemy import text

    from dispatcher.db import alembic_config

    url = fresh_database_url(backend, tmp_path, postgres_database)
    upgrade(url, "0001")
    engine = create_engine(url)
    rows = [
        (1, "email", '{"email": "ops@example.com"}'),
        (1, "email", '{"email": "ops@example.com"}'),  # two notifications, one address
        (1, "email", '{"email": "dev@example.com"}'),
        (2, "email", '{"email": "ops@example.com"}'),
        (2, "webhook", '{"url": "https://hooks.example.com/x"}'),
    ]
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO repositories (id, namespace, name, created_at) VALUES "
                    "(1, 'acme', 'web', CURRENT_TIMESTAMP), (2, 'acme', 'api', CURRENT_TIMESTAMP)"
                )
            )
            for number, (repository_id, method, config) in enumerate(rows):
                conn.execute(
                    text(
                        "INSERT INTO notifications (uuid, repository_id, event, method, config,"
                        " event_config, number_of_failures, created_at, updated_at) VALUES"
                        " (:uuid, :repo, 'repo_push', :method, :config, '{}', 0,"
                        " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {
                        "uuid": f"u{number}",
                        "repo": repository_id,
                        "method": method,
                        "config": config,
                    },
                )
        upgrade(url)
        with engine.connect() as conn:
            authorized = conn.execute(
                text(
                    "SELECT repository_id, email, confirmed, code_hash, confirmed_at"
                    " FROM authorized_emails ORDER BY repository_id, email"
                )
            ).all()
        assert [(r[0], r[1], bool(r[2]), r[3]) for r in authorized] == [
            (1, "dev@example.com", True, None),
            (1, "ops@example.com", True, None),
            (2, "ops@example.com", True, None),
        ]
        assert all(row[4] is not None for row in authorized)

        command.downgrade(alembic_config(url), "0001")
        with engine.connect() as conn:
            assert "authorized_emails" not in inspect(conn).get_table_names()
            assert conn.execute(text("SELECT count(*) FROM notifications")).scalar() == len(rows)
        upgrade(url)  # and up again
        with engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM authorized_emails")).scalar()
        assert count == 3
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_server_secrets_migration_downgrades_and_upgrades_again(
    backend: str, tmp_path: Path, postgres_database: Callable[[], str]
) -> None:
    from alembic import command

    from dispatcher.db import alembic_config

    url = fresh_database_url(backend, tmp_path, postgres_database)
    upgrade(url)
    engine = create_engine(url)
    try:
        assert "server_secrets" in inspect(engine).get_table_names()
        command.downgrade(alembic_config(url), "0002")
        assert "server_secrets" not in inspect(engine).get_table_names()
        assert "authorized_emails" in inspect(engine).get_table_names()
        upgrade(url)
        assert "server_secrets" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_0007_keeps_the_deliveries_and_recovers_each_at_most_once(
    backend: str, tmp_path: Path, postgres_database: Callable[[], str]
) -> None:
    from alembic import command
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from dispatcher.db import alembic_config

    url = fresh_database_url(backend, tmp_path, postgres_database)
    upgrade(url, "0006")
    engine = create_engine(url)
    delivery = (
        "INSERT INTO deliveries (id, notification_id, event_id, kind, status, attempt_count,"
        " next_attempt_at, created_at{column}) VALUES (:id, 1, 'e', 'event', 'failed', 1,"
        " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP{value})"
    )
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO repositories (id, namespace, name, created_at)"
                    " VALUES (1, 'acme', 'web', CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO notifications (id, uuid, repository_id, event, method, config,"
                    " event_config, number_of_failures, created_at, updated_at) VALUES"
                    " (1, 'u', 1, 'repo_push', 'webhook', '{}', '{}', 0, CURRENT_TIMESTAMP,"
                    " CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO events (id, repository_id, name, data, created_at)"
                    " VALUES ('e', 1, 'repo_push', '{}', CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(text(delivery.format(column="", value="")), {"id": "old"})
        upgrade(url)
        recovery = delivery.format(column=", recovers_id", value=", 'old'")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT recovers_id FROM deliveries")).all() == [(None,)]
            conn.execute(text(recovery), {"id": "first"})
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(recovery), {"id": "second"})

        command.downgrade(alembic_config(url), "0006")
        with engine.connect() as conn:
            columns = {column["name"] for column in inspect(conn).get_columns("deliveries")}
            assert "recovers_id" not in columns
            ids = conn.execute(text("SELECT id FROM deliveries ORDER BY id")).scalars().all()
        assert ids == ["first", "old"]
    finally:
        engine.dispose()
