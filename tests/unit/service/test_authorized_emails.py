"""The authorized e-mail use cases on SQLite and PostgreSQL: the create rule and its switch,
codes stored as hashes, operator authorization, and cleanup with the repository."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from dispatcher.config import Settings
from dispatcher.errors import InvalidRequestError
from dispatcher.models import AuthorizedEmail, Notification, Repository
from dispatcher.runtime import Runtime
from dispatcher.service import authorized_emails, notifications, repositories
from dispatcher.service.tokens import hash_secret
from tests.unit.pipeline_helpers import runtime_emptied_after

ADDRESS = "ops@example.com"


@pytest.fixture
def runtime(database_url: str) -> Iterator[Runtime]:
    yield from runtime_emptied_after(database_url)


def repository(runtime: Runtime, name: str = "acme/web") -> Repository:
    with runtime.sessions.begin() as session:
        repo, _ = repositories.add_repository(session, name)
        return repo


def create_email(runtime: Runtime, repo: Repository, settings: Settings, address: str) -> None:
    with runtime.sessions.begin() as session:
        notifications.create_notification(
            session,
            repo,
            event="repo_push",
            method="email",
            config={"email": address},
            event_config={},
            title=None,
            settings=settings,
        )


def test_required_refuses_unconfirmed_and_off_allows_any_address(runtime: Runtime) -> None:
    repo = repository(runtime)
    required = runtime.settings
    assert required.email_authorization == "required"
    with pytest.raises(InvalidRequestError) as refused:
        create_email(runtime, repo, required, ADDRESS)
    assert refused.value.message == authorized_emails.NOT_AUTHORIZED

    # asked but not confirmed is still refused
    with runtime.sessions.begin() as session:
        authorized_emails.request_confirmation(session, repo, ADDRESS, required)
    with pytest.raises(InvalidRequestError):
        create_email(runtime, repo, required, ADDRESS)

    off = required.model_copy(update={"email_authorization": "off"})
    create_email(runtime, repo, off, "anyone@example.com")
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Notification)) == 1


def test_the_switch_accepts_only_its_two_values() -> None:
    assert Settings(email_authorization="off").email_authorization == "off"
    with pytest.raises(ValueError, match="email_authorization"):
        Settings(email_authorization="maybe")  # type: ignore[arg-type]


def test_request_stores_only_the_hash_and_confirm_takes_the_code(runtime: Runtime) -> None:
    repo = repository(runtime)
    with runtime.sessions.begin() as session:
        record, message = authorized_emails.request_confirmation(
            session, repo, ADDRESS, runtime.settings
        )
        record_id = record.id
    assert message is not None
    code = message.text.split("/authrepoemail?code=", 1)[1].split()[0]
    assert f"https://quay.example.com/authrepoemail?code={code}" in message.html
    with runtime.sessions() as session:
        row = session.get_one(AuthorizedEmail, record_id)
        assert row.code_hash == hash_secret(code)
        assert not row.confirmed

    with runtime.sessions.begin() as session:
        confirmed, confirmed_repo = authorized_emails.confirm(session, code)
        assert confirmed.confirmed and confirmed.confirmed_at is not None
        assert confirmed_repo.full_name == "acme/web"
    create_email(runtime, repo, runtime.settings, ADDRESS)

    with runtime.sessions() as session, pytest.raises(InvalidRequestError, match="Invalid conf"):
        authorized_emails.confirm(session, code + "x")


def test_operator_authorize_is_idempotent_and_validates(runtime: Runtime) -> None:
    repo = repository(runtime)
    with runtime.sessions.begin() as session:
        assert authorized_emails.authorize(session, repo, ADDRESS, runtime.settings) is True
        assert authorized_emails.authorize(session, repo, ADDRESS, runtime.settings) is False
        with pytest.raises(InvalidRequestError, match="Invalid e-mail address"):
            authorized_emails.authorize(session, repo, "nobody", runtime.settings)
    create_email(runtime, repo, runtime.settings, ADDRESS)
    with runtime.sessions.begin() as session:
        _, message = authorized_emails.request_confirmation(
            session, repo, ADDRESS, runtime.settings
        )
    assert message is None  # already confirmed: nothing to mail


def test_removing_the_repository_removes_its_addresses(runtime: Runtime) -> None:
    web, api = repository(runtime), repository(runtime, "acme/api")
    with runtime.sessions.begin() as session:
        authorized_emails.authorize(session, web, ADDRESS, runtime.settings)
        authorized_emails.authorize(session, api, ADDRESS, runtime.settings)
    with runtime.sessions.begin() as session:
        repositories.remove_repository(session, "acme/web")
    with runtime.sessions() as session:
        left = session.scalars(select(AuthorizedEmail.repository_id)).all()
    assert left == [api.id]
