"""``dispatcher.service.overview`` on SQLite and PostgreSQL: repositories a principal administers
with their counts, and notifications with their state and newest delivery."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from dispatcher.errors import PermissionDeniedError
from dispatcher.models import Repository, utcnow
from dispatcher.runtime import Runtime, create_runtime
from dispatcher.service import overview, repositories
from dispatcher.service.notices import sync_operator_notices
from dispatcher.service.tokens import Principal, grant_covers
from tests.conftest import empty_tables, settings_for
from tests.deliverylog import add_delivery, add_notification


@pytest.fixture
def runtime(database_url: str) -> Iterator[Runtime]:
    runtime = create_runtime(settings_for(database_url))
    yield runtime
    empty_tables(runtime)
    runtime.close()


def admin(*grants: str) -> Principal:
    return Principal(token_id=1, scopes=("repo:admin",), grants=grants)


@pytest.fixture
def estate(runtime: Runtime) -> Runtime:
    """acme/web: one disabled, one failing, one ok; acme/api: one failing; other/x: one ok;
    other/y: none."""
    with runtime.sessions.begin() as session:
        add_notification(session, "acme/web", failures=3, disabled=True)
        add_notification(session, "acme/web", failures=1)
        add_notification(session, "acme/web")
        add_notification(session, "acme/api", failures=2)
        add_notification(session, "other/x")
        repositories.ensure_repository(session, "other", "y")
    return runtime


def listed(runtime: Runtime, principal: Principal, limit: int = 50) -> list[tuple[str, ...]]:
    with runtime.sessions() as session:
        page = overview.administered_repositories(session, principal, limit=limit)
    return [
        (item.full_name, str(item.notifications), str(item.failing), str(item.disabled))
        for item in page.repositories
    ]


def test_the_operators_notice_repository_is_not_listed(estate: Runtime) -> None:
    settings = estate.settings.model_copy(update={"notice_webhook": "https://ops.example/n"})
    sync_operator_notices(estate.sessions, settings)
    assert "_dispatcher/notices" not in [name for name, *_ in listed(estate, admin("*"))]
    assert len(listed(estate, admin("*"))) == 4


def test_repositories_with_disabled_then_failing_first(estate: Runtime) -> None:
    assert listed(estate, admin("*")) == [
        ("acme/web", "3", "1", "1"),
        ("acme/api", "1", "1", "0"),
        ("other/x", "1", "0", "0"),
        ("other/y", "0", "0", "0"),
    ]


def test_grants_choose_the_repositories(estate: Runtime) -> None:
    assert [row[0] for row in listed(estate, admin("acme/*"))] == ["acme/web", "acme/api"]
    assert [row[0] for row in listed(estate, admin("other/y", "acme/api"))] == [
        "acme/api",
        "other/y",
    ]
    assert listed(estate, admin("ghost/*")) == []


def test_the_sql_filter_reads_grants_as_grant_covers_does(estate: Runtime) -> None:
    with estate.sessions() as session:
        names = [(r.namespace, r.name) for r in session.scalars(select(Repository)).all()]
    cases = [("*",), ("acme/*",), ("acme/web",), ("acme/webx",), ("other/*", "acme/api"), ()]
    for grants in cases:
        expected = sorted(
            f"{ns}/{name}" for ns, name in names if any(grant_covers(g, ns, name) for g in grants)
        )
        assert sorted(row[0] for row in listed(estate, admin(*grants))) == expected, grants


def test_without_repo_admin_nothing_is_listed(estate: Runtime) -> None:
    producer = Principal(token_id=1, scopes=("events:write",), grants=("*",))
    with estate.sessions() as session, pytest.raises(PermissionDeniedError):
        overview.administered_repositories(session, producer, limit=10)


def test_pages(estate: Runtime) -> None:
    with estate.sessions() as session:
        first = overview.administered_repositories(session, admin("*"), limit=3)
        last = overview.administered_repositories(session, admin("*"), limit=3, offset=3)
    assert first.more and not last.more
    assert [item.full_name for item in last.repositories] == ["other/y"]


def test_notifications_show_state_and_newest_delivery(runtime: Runtime) -> None:
    now = utcnow()
    with runtime.sessions.begin() as session:
        fine = add_notification(session, config={"url": "http://example.com/h?token=s3cr3t"})
        add_delivery(session, fine, created_at=now - timedelta(minutes=5), status="failed")
        newest = add_delivery(session, fine, created_at=now - timedelta(minutes=1))
        broken = add_notification(session, failures=3, disabled=True)
        add_delivery(session, broken, status="pending", attempts=0)
        never = add_notification(session, failures=1)
        repository = repositories.get_repository(session, "acme", "web")
        uuids = (fine.uuid, broken.uuid, never.uuid)
        newest_finished = newest.finished_at
    with runtime.sessions() as session:
        summaries = overview.notification_summaries(session, repository)
        one = overview.notification_summaries(session, repository, uuid=uuids[0])
    by_uuid = {summary.notification.uuid: summary for summary in summaries}
    assert [summary.notification.uuid for summary in summaries] == [
        uuids[1],
        uuids[2],
        uuids[0],
    ]
    assert (by_uuid[uuids[0]].state, by_uuid[uuids[0]].last_status) == ("ok", "succeeded")
    assert by_uuid[uuids[0]].last_at == newest_finished
    assert by_uuid[uuids[0]].target == "http://example.com/h?***"
    assert (by_uuid[uuids[1]].state, by_uuid[uuids[1]].last_status) == ("disabled", "pending")
    assert by_uuid[uuids[1]].last_at is not None
    assert (by_uuid[uuids[2]].state, by_uuid[uuids[2]].last_status) == ("failing", None)
    assert by_uuid[uuids[2]].last_at is None
    assert [summary.notification.uuid for summary in one] == [uuids[0]]
