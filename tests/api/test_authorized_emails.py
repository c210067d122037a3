"""Authorized e-mail as Quay does it, end to end on SQLite and PostgreSQL: the API mails a
confirmation link through a real SMTP server (aiosmtpd), the test follows the link on the
live server, and only then does an e-mail notification to that address get created."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import Message
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select

from dispatcher.models import AuthorizedEmail
from dispatcher.runtime import create_runtime
from dispatcher.service import repositories, tokens
from dispatcher.service.authorized_emails import NOT_AUTHORIZED
from tests.conftest import LiveServer, empty_tables, free_port, serving, settings_for
from tests.doubles import RecordingDoorbell
from tests.smtpserver import Mailbox, smtp_server
from tests.tcpproxy import TCPProxy

BASE = "/api/v1/repository/acme/web"
ADDRESS = "ops@example.com"
PROBLEM_KEYS = {"detail", "error_message", "error_type", "title", "type", "status"}
LINK = re.compile(r"http://127\.0\.0\.1:\d+/authrepoemail\?code=[A-Za-z0-9_-]+")


@dataclass
class MailAPI:
    """The API on a loopback port whose SERVER_HOSTNAME is that port (so confirmation links
    lead back to it), mailing through a proxy in front of a real SMTP server."""

    live: LiveServer
    mailbox: Mailbox
    smtp: TCPProxy


@pytest.fixture(scope="module")
def mail_api(database_url: str) -> Iterator[MailAPI]:
    with smtp_server() as (smtp_port, mailbox):
        proxy = TCPProxy(("127.0.0.1", smtp_port))
        proxy.start()
        port = free_port()
        settings = settings_for(
            database_url,
            server_hostname=f"127.0.0.1:{port}",
            preferred_url_scheme="http",
            smtp_host="127.0.0.1",
            smtp_port=proxy.port,
            mail_from="Registry <registry@example.com>",
            http_timeout=5,
        )
        runtime = create_runtime(settings, doorbell=RecordingDoorbell())
        try:
            with serving(runtime, port=port) as base_url:
                yield MailAPI(LiveServer(runtime, base_url), mailbox, proxy)
        finally:
            runtime.close()
            proxy.stop()


@pytest.fixture
def api(mail_api: MailAPI) -> Iterator[MailAPI]:
    mail_api.mailbox.messages.clear()
    mail_api.mailbox.rcpt_reply = None
    with mail_api.live.runtime.sessions.begin() as session:
        repositories.add_repository(session, "acme/web")
        repositories.add_repository(session, "acme/api")
    yield mail_api
    mail_api.smtp.stop()  # a test may have taken SMTP away: bring it back for the next
    mail_api.smtp.start()
    empty_tables(mail_api.live.runtime)


@pytest.fixture
def http(api: MailAPI) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.live.base_url, timeout=15) as client:
        yield client


def token(api: MailAPI, *grants: str) -> dict[str, str]:
    with api.live.runtime.sessions.begin() as session:
        _, secret = tokens.create_token(
            session, scopes=["repo:admin"], grants=list(grants) or ["acme/web"]
        )
    return {"Authorization": f"Bearer {secret}"}


def create_email_notification(
    http: httpx.Client, headers: dict[str, str], address: str = ADDRESS
) -> httpx.Response:
    body = {"event": "repo_push", "method": "email", "config": {"email": address}}
    return http.post(f"{BASE}/notification/", json={**body, "eventConfig": {}}, headers=headers)


def link_in(message: Message) -> str:
    """The confirmation link, which both parts of the mail must carry."""
    parts = {part.get_content_type(): part.get_payload(decode=True) for part in message.walk()}
    text = parts["text/plain"].decode()
    html = parts["text/html"].decode()
    (link,) = set(LINK.findall(text))
    assert link in html
    return link


def stored(api: MailAPI, address: str = ADDRESS) -> list[AuthorizedEmail]:
    with api.live.runtime.sessions() as session:
        return list(
            session.scalars(select(AuthorizedEmail).where(AuthorizedEmail.email == address))
        )


# -- the whole flow ----------------------------------------------------------------------------


def test_mail_link_then_create(http: httpx.Client, api: MailAPI) -> None:
    admin = token(api)
    refused = create_email_notification(http, admin)
    assert refused.status_code == 400
    assert refused.json()["detail"] == NOT_AUTHORIZED
    assert NOT_AUTHORIZED == (
        "The specified e-mail address is not authorized to receive notifications for this "
        "repository"
    )

    assert http.get(f"{BASE}/authorizedemail/{ADDRESS}", headers=admin).status_code == 404
    asked = http.post(f"{BASE}/authorizedemail/{ADDRESS}", headers=admin)
    assert asked.status_code == 200, asked.text
    assert asked.json() == {
        "email": ADDRESS,
        "repository": "web",
        "namespace": "acme",
        "confirmed": False,
    }
    # the mail went out before the answer: it is in the mailbox now
    (mail,) = api.mailbox.messages
    assert mail["To"] == ADDRESS
    assert mail["From"] == "Registry <registry@example.com>"
    assert mail["Subject"] == "Please verify your e-mail address for repository acme/web"
    assert mail["Message-ID"].endswith("@example.com>")
    link = link_in(mail)
    assert link.startswith(f"{api.live.base_url}/authrepoemail?code=")

    # only the code's hash is stored
    code = link.rpartition("=")[2]
    (record,) = stored(api)
    assert record.code_hash == tokens.hash_secret(code) and code not in record.code_hash

    checked = http.get(f"{BASE}/authorizedemail/{ADDRESS}", headers=admin)
    assert checked.json()["confirmed"] is False
    assert create_email_notification(http, admin).status_code == 400

    page = httpx.get(link)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert (
        "Your E-mail address has been authorized to receive notifications for repository "
        '<a href="http://127.0.0.1:' in page.text
    )
    assert '/repository/acme/web">acme/web</a>.' in page.text

    assert http.get(f"{BASE}/authorizedemail/{ADDRESS}", headers=admin).json()["confirmed"]
    created = create_email_notification(http, admin)
    assert created.status_code == 201, created.text
    assert created.json()["config"] == {"email": ADDRESS}

    # following the link again still shows success; asking again sends nothing
    assert httpx.get(link).status_code == 200
    again = http.post(f"{BASE}/authorizedemail/{ADDRESS}", headers=admin)
    assert again.json()["confirmed"] is True
    assert len(api.mailbox.messages) == 1


def test_authorization_is_per_repository_and_exact_address(
    http: httpx.Client, api: MailAPI
) -> None:
    admin = token(api, "acme/*")
    http.post(f"{BASE}/authorizedemail/{ADDRESS}", headers=admin)
    assert httpx.get(link_in(api.mailbox.wait_for(1)[0])).status_code == 200
    assert create_email_notification(http, admin, "Ops@example.com").status_code == 400
    other = {"event": "repo_push", "method": "email", "config": {"email": ADDRESS}}
    response = http.post(
        "/api/v1/repository/acme/api/notification/",
        json={**other, "eventConfig": {}},
        headers=admin,
    )
    assert response.status_code == 400
    assert response.json()["detail"] == NOT_AUTHORIZED


def test_asking_again_replaces_the_code(http: httpx.Client, api: MailAPI) -> None:
    admin = token(api)
    http.post(f"{BASE}/authorizedemail/{ADDRESS}", headers=admin)
    http.post(f"{BASE}/authorizedemail/{ADDRESS}", headers=admin)
    first, second = (link_in(mail) for mail in api.mailbox.wait_for(2))
    assert first != second
    stale = httpx.get(first)
    assert stale.status_code == 400
    assert "Invalid confirmation code." in stale.text
    assert httpx.get(second).status_code == 200
    assert len(stored(api)) == 1


@pytest.mark.parametrize("query", ["", "?code=", "?code=nope", "?code=" + "x" * 5000])
def test_invalid_confirmation_codes(http: httpx.Client, api: MailAPI, query: str) -> None:
    page = http.get(f"/authrepoemail{query}")
    assert page.status_code == 400
    assert page.headers["content-type"].startswith("text/html")
    assert "Invalid confirmation code." in page.text


@pytest.mark.parametrize(
    "address", ["not-an-address", "a@example.com\r\nBcc: victim@example.com", "a b@example.com"]
)
def test_invalid_address_is_400_and_mails_nothing(
    http: httpx.Client, api: MailAPI, address: str
) -> None:
    response = http.post(f"{BASE}/authorizedemail/{quote(address, safe='@')}", headers=token(api))
    assert response.status_code == 400
    assert response.json()["detail"] == "Invalid e-mail address"
    assert api.mailbox.messages == []
    assert stored(api, address) == []


# -- auth and errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["GET", "POST"])
def test_auth_rules_are_the_notification_endpoints(
    http: httpx.Client, api: MailAPI, verb: str
) -> None:
    path = f"/authorizedemail/{ADDRESS}"
    cases = [
        (f"{BASE}{path}", {}, 401, "invalid_token"),
        (f"{BASE}{path}", token(api, "acme/api"), 403, "insufficient_scope"),
        (f"/api/v1/repository/acme/nope{path}", token(api, "acme/*"), 404, "not_found"),
    ]
    for url, headers, status, error_type in cases:
        response = http.request(verb, url, headers=headers)
        assert response.status_code == status, response.text
        assert set(response.json()) == PROBLEM_KEYS
        assert response.json()["error_type"] == error_type
    assert api.mailbox.messages == []


# -- when the mail cannot go out ---------------------------------------------------------------


def test_smtp_down_answers_503_and_keeps_the_address_unconfirmed(
    http: httpx.Client, api: MailAPI
) -> None:
    admin = token(api)
    api.smtp.stop()
    response = http.post(f"{BASE}/authorizedemail/{ADDRESS}", headers=admin)
    assert response.status_code == 503, response.text
    body = response.json()
    assert set(body) == PROBLEM_KEYS
    assert body["error_type"] == "service_unavailable"
    assert body["detail"].startswith("The confirmation e-mail could not be sent (SMTP ")
    assert "ask again to send a new link" in body["detail"]
    assert http.get(f"{BASE}/authorizedemail/{ADDRESS}", headers=admin).json()["confirmed"] is False

    api.smtp.start()
    assert http.post(f"{BASE}/authorizedemail/{ADDRESS}", headers=admin).status_code == 200
    assert httpx.get(link_in(api.mailbox.wait_for(1)[0])).status_code == 200
    assert create_email_notification(http, admin).status_code == 201


def test_smtp_refusing_the_recipient_answers_502(http: httpx.Client, api: MailAPI) -> None:
    api.mailbox.rcpt_reply = "550 5.1.1 no such user"
    response = http.post(f"{BASE}/authorizedemail/{ADDRESS}", headers=token(api))
    assert response.status_code == 502, response.text
    assert response.json()["error_type"] == "bad_gateway"
    assert "550" in response.json()["detail"] and "no such user" in response.json()["detail"]
    assert api.mailbox.messages == []


def test_concurrent_requests_for_one_new_address_never_fail(
    http: httpx.Client, api: MailAPI
) -> None:
    admin = token(api)
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(
            pool.map(
                lambda _: http.post(f"{BASE}/authorizedemail/{ADDRESS}", headers=admin).status_code,
                range(6),
            )
        )
    assert statuses == [200] * 6
    assert len(stored(api)) == 1
    api.mailbox.wait_for(6)
