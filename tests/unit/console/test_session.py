"""The console's cookie: signed, dated, flagged; its key configured or generated once and
shared through the database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.cookies import SimpleCookie

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select
from starlette.responses import Response

from dispatcher.console.session import COOKIE, CsrfError, SessionCodec, Visitor
from dispatcher.models import ServerSecret
from dispatcher.runtime import Runtime, create_runtime
from dispatcher.service.server_secrets import console_secret
from tests.conftest import empty_tables, settings_for

KEY = "k" * 40


@pytest.fixture
def runtime(database_url: str) -> Iterator[Runtime]:
    runtime = create_runtime(settings_for(database_url))
    yield runtime
    empty_tables(runtime)
    runtime.close()


def cookie_of(response: Response) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    jar.load(response.headers["set-cookie"])
    return jar


def test_a_generated_secret_is_stored_once_and_shared(runtime: Runtime) -> None:
    first = console_secret(runtime.sessions, runtime.settings)
    other = create_runtime(runtime.settings)
    try:
        assert console_secret(other.sessions, other.settings) == first
    finally:
        other.close()
    assert len(first) >= 48
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ServerSecret)) == 1


def test_a_configured_secret_wins_and_nothing_is_stored(runtime: Runtime) -> None:
    settings = settings_for(runtime.settings.database_url, console_secret=KEY)
    assert console_secret(runtime.sessions, settings) == KEY
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ServerSecret)) == 0


@pytest.mark.parametrize(("scheme", "secure"), [("https", True), ("http", False)])
def test_cookie_flags(runtime: Runtime, scheme: str, secure: bool) -> None:
    codec = SessionCodec(runtime.sessions, settings_for("sqlite://", preferred_url_scheme=scheme))
    visitor = codec.read(None)
    visitor.sign_in("dsp_secret")
    response = Response()
    codec.write(response, visitor, "/console")
    morsel = cookie_of(response)[COOKIE]
    assert morsel["httponly"] and morsel["samesite"] == "strict" and morsel["path"] == "/console"
    assert bool(morsel["secure"]) is secure
    assert int(morsel["max-age"]) == 12 * 3600
    again = codec.read(morsel.value)
    assert (again.token, again.csrf, again.changed) == ("dsp_secret", visitor.csrf, False)


def test_altered_foreign_and_old_cookies_are_worth_nothing(runtime: Runtime) -> None:
    settings = settings_for("sqlite://", console_secret=KEY, console_session_lifetime="1h")
    codec = SessionCodec(runtime.sessions, settings)
    good = URLSafeTimedSerializer(KEY, salt="dispatcher.console.session")
    payload = {"csrf": "c", "token": "dsp_t"}
    assert codec.read(good.dumps(payload)).token == "dsp_t"
    tampered = good.dumps(payload)[:-2] + "xx"
    foreign = URLSafeTimedSerializer("x" * 40, salt="dispatcher.console.session").dumps(payload)

    class OldSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 3601

    old = URLSafeTimedSerializer(KEY, salt="dispatcher.console.session", signer=OldSigner)
    assert codec.read(old.dumps(payload)).token is None
    odd = good.dumps({"csrf": 5, "token": "dsp_t"})
    for cookie in (tampered, foreign, old.dumps(payload), odd, "garbage", "x" * 5000):
        visitor = codec.read(cookie)
        assert visitor.token is None and visitor.changed and visitor.csrf != "c", cookie[:20]


def test_csrf_check() -> None:
    visitor = Visitor(csrf="abc")
    visitor.check_csrf("abc")
    for wrong in (None, "", "abd", "abcd"):
        with pytest.raises(CsrfError):
            visitor.check_csrf(wrong)


def test_sign_out_deletes_the_cookie(runtime: Runtime) -> None:
    codec = SessionCodec(runtime.sessions, settings_for("sqlite://", console_secret=KEY))
    visitor = Visitor(csrf="c", token="dsp_t")
    visitor.sign_out()
    response = Response()
    codec.write(response, visitor, "/console")
    morsel = cookie_of(response)[COOKIE]
    assert morsel.value == "" and morsel["max-age"] == "0"
