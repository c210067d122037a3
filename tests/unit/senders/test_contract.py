"""One contract, every registered sender: each failure a target can produce becomes the right
DeliveryError, with its status code recorded and no secret in what is kept.

HTTP senders run against ``httpx.MockTransport`` (and the real guarded transport for the
blocked address case); the e-mail sender against fake SMTP factories raising smtplib's exceptions.
"""

from __future__ import annotations

import asyncio
import email.utils
import smtplib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from dispatcher.config import Settings
from dispatcher.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from dispatcher.senders.base import Receipt, RenderContext, Sender
from dispatcher.senders.registry import METHODS, build_registry
from dispatcher.senders.transport import make_http_transport
from tests.unit.senders.render_helpers import sample_context

NOW = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
EXCERPT_BYTES = 64
SETTINGS = Settings(response_excerpt_bytes=EXCERPT_BYTES, retry_after_max=600)
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SMTP_PASSWORD = "hunter2-smtp"
CONFIGS: dict[str, dict[str, Any]] = {
    "webhook": {"url": "https://hooks.example.com/quay?token=t0ps3cret", "secret": WEBHOOK_SECRET},
    "slack": {"url": "https://hooks.slack.com/services/T000/B000/S3cr3tPath"},
    "email": {"email": "ops@example.com"},
}
SECRETS = ["t0ps3cret", WEBHOOK_SECRET, "S3cr3tPath", SMTP_PASSWORD]

Handler = Callable[[httpx.Request], httpx.Response]
Factory = Callable[[], smtplib.SMTP]


@dataclass(frozen=True)
class Expect:
    """What one scenario must produce: a Receipt (``error=None``) or an error class."""

    error: type[DeliveryError] | None
    status_code: int | None = None
    retry_after: tuple[float, float] | None = None


@dataclass
class Case:
    """A sender wired to produce one scenario, and the config to render with."""

    sender: Sender
    config: dict[str, Any] = field(default_factory=dict)
    transport: httpx.AsyncBaseTransport | None = None  # closed after the send

    async def send(self, message: Any) -> Receipt:
        try:
            return await self.sender.send(message)
        finally:
            if self.transport is not None:
                await self.transport.aclose()


def context(event_name: str = "repo_push") -> RenderContext:
    return sample_context(event_name, at=NOW, delivery_id="msg_contract")


# -- HTTP senders (webhook, Slack) -------------------------------------------------------------


def respond(status: int, body: str = "", headers: dict[str, str] | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        text = body.replace("{url}", str(request.url))
        return httpx.Response(status, text=text, headers=headers or {})

    return handler


def retry_at_date(seconds_ahead: float) -> Handler:
    """429 with an HTTP-date ``Retry-After``, computed when the request is answered."""

    def handler(request: httpx.Request) -> httpx.Response:
        when = datetime.now(UTC) + timedelta(seconds=seconds_ahead)
        headers = {"Retry-After": email.utils.format_datetime(when, usegmt=True)}
        return httpx.Response(429, headers=headers)

    return handler


def fail(exc_type: type[httpx.TransportError], message: str = "boom") -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type(message, request=request)

    return handler


HTTP_SCENARIOS: dict[str, tuple[Handler, Expect]] = {
    "success": (respond(200, "ok"), Expect(None, 200)),
    "success_204": (respond(204), Expect(None, 204)),
    "connect_timeout": (fail(httpx.ConnectTimeout), Expect(TransientDeliveryError)),
    "read_timeout": (fail(httpx.ReadTimeout), Expect(TransientDeliveryError)),
    "connect_error": (
        fail(httpx.ConnectError, "[Errno 111] refused"),
        Expect(TransientDeliveryError),
    ),
    "remote_protocol_error": (fail(httpx.RemoteProtocolError), Expect(TransientDeliveryError)),
    "server_error": (respond(500, "rollup_error"), Expect(TransientDeliveryError, 500)),
    "bad_gateway": (respond(502), Expect(TransientDeliveryError, 502)),
    "unavailable_retry_after": (
        respond(503, headers={"Retry-After": "30"}),
        Expect(TransientDeliveryError, 503, (30, 30)),
    ),
    "request_timeout": (respond(408), Expect(TransientDeliveryError, 408)),
    "rate_limited_seconds": (
        respond(429, "rate limited", {"Retry-After": "7"}),
        Expect(TransientDeliveryError, 429, (7, 7)),
    ),
    "rate_limited_date": (
        retry_at_date(seconds_ahead=120),
        Expect(TransientDeliveryError, 429, (100, 120)),
    ),
    "rate_limited_capped": (
        respond(429, headers={"Retry-After": "86400"}),
        Expect(TransientDeliveryError, 429, (600, 600)),
    ),
    "rate_limited_unreadable": (
        respond(429, headers={"Retry-After": "soon"}),
        Expect(TransientDeliveryError, 429),
    ),
    "bad_request": (respond(400, "invalid_payload"), Expect(PermanentDeliveryError, 400)),
    "forbidden": (respond(403, "action_prohibited"), Expect(PermanentDeliveryError, 403)),
    "not_found": (respond(404, "no_service"), Expect(PermanentDeliveryError, 404)),
    "gone": (respond(410, "channel_is_archived"), Expect(PermanentDeliveryError, 410)),
    "unprocessable": (respond(422), Expect(PermanentDeliveryError, 422)),
    "redirect": (
        respond(302, headers={"Location": "http://169.254.169.254/"}),
        Expect(PermanentDeliveryError, 302),
    ),
    "moved": (
        respond(301, headers={"Location": "/elsewhere"}),
        Expect(PermanentDeliveryError, 301),
    ),
    "echoes_url": (respond(400, "bad request for {url}"), Expect(PermanentDeliveryError, 400)),
    "long_body": (respond(500, "x" * 5000), Expect(TransientDeliveryError, 500)),
}


def http_case(method: str, scenario: str, tmp_path: Path) -> tuple[Case, Expect]:
    if scenario == "blocked_address":
        # The real guarded transport, with a resolver that answers like a rebinding attacker.
        transport = make_http_transport(SETTINGS, resolver=lambda host, port: ["10.0.0.7"])
        sender = build_registry(SETTINGS, transport)[method]
        return Case(sender, CONFIGS[method], transport), Expect(PermanentDeliveryError)
    if scenario == "template_error":
        if method == "webhook":
            config = {**CONFIGS[method], "template": '{"a": "${}"}'}
            sender = build_registry(SETTINGS, UNUSED_TRANSPORT)[method]
            return Case(sender, config), Expect(PermanentDeliveryError)
        return template_error_case(method, tmp_path), Expect(PermanentDeliveryError)
    handler, expect = HTTP_SCENARIOS[scenario]
    transport = httpx.MockTransport(handler)
    return Case(build_registry(SETTINGS, transport)[method], CONFIGS[method]), expect


def template_error_case(method: str, tmp_path: Path) -> Case:
    """A templates directory whose template for the event fails at render time."""
    broken = "{{ data.no_such_field.deeper }}"
    (tmp_path / method).mkdir(parents=True)
    for suffix in (".txt", ".html"):
        (tmp_path / method / f"repo_push{suffix}").write_text(broken)
    settings = Settings(templates_dir=tmp_path, response_excerpt_bytes=EXCERPT_BYTES)
    factory = FakeSMTPFactory()
    sender = build_registry(settings, UNUSED_TRANSPORT, factory)[method]
    return Case(sender, CONFIGS[method])


# -- e-mail ------------------------------------------------------------------------------------


class FakeSMTP:
    """Enough of smtplib.SMTP for one send: records messages or raises a given exception."""

    def __init__(self, raise_on_send: BaseException | None) -> None:
        self.raise_on_send = raise_on_send
        self.sent: list[Any] = []
        self.quit_called = False

    def send_message(self, message: Any) -> dict[str, Any]:
        if self.raise_on_send is not None:
            raise self.raise_on_send
        self.sent.append(message)
        return {}

    def quit(self) -> None:
        self.quit_called = True

    def close(self) -> None:
        pass


class FakeSMTPFactory:
    def __init__(
        self,
        *,
        on_connect: BaseException | None = None,
        on_send: BaseException | None = None,
    ) -> None:
        self.on_connect = on_connect
        self.on_send = on_send
        self.sessions: list[FakeSMTP] = []

    def __call__(self) -> smtplib.SMTP:
        if self.on_connect is not None:
            raise self.on_connect
        session = FakeSMTP(self.on_send)
        self.sessions.append(session)
        return session  # type: ignore[return-value]


RCPT = "ops@example.com"
EMAIL_SCENARIOS: dict[str, tuple[FakeSMTPFactory, Expect]] = {
    "success": (FakeSMTPFactory(), Expect(None, 250)),
    "connect_timeout": (
        FakeSMTPFactory(on_connect=TimeoutError("timed out")),
        Expect(TransientDeliveryError),
    ),
    "connect_error": (
        FakeSMTPFactory(on_connect=ConnectionRefusedError(111, "Connection refused")),
        Expect(TransientDeliveryError),
    ),
    "greeting_refused": (
        FakeSMTPFactory(on_connect=smtplib.SMTPConnectError(421, b"try later")),
        Expect(TransientDeliveryError, 421),
    ),
    "auth_failed": (
        FakeSMTPFactory(on_connect=smtplib.SMTPAuthenticationError(535, b"5.7.8 bad credentials")),
        Expect(PermanentDeliveryError, 535),
    ),
    "disconnected": (
        FakeSMTPFactory(on_send=smtplib.SMTPServerDisconnected("Connection unexpectedly closed")),
        Expect(TransientDeliveryError),
    ),
    "read_timeout": (
        FakeSMTPFactory(on_send=TimeoutError("timed out")),
        Expect(TransientDeliveryError),
    ),
    "mailbox_busy": (
        FakeSMTPFactory(on_send=smtplib.SMTPRecipientsRefused({RCPT: (450, b"4.2.1 busy")})),
        Expect(TransientDeliveryError, 450),
    ),
    "rcpt_552_is_452": (
        FakeSMTPFactory(on_send=smtplib.SMTPRecipientsRefused({RCPT: (552, b"5.2.2 full")})),
        Expect(TransientDeliveryError, 552),
    ),
    "no_such_mailbox": (
        FakeSMTPFactory(on_send=smtplib.SMTPRecipientsRefused({RCPT: (550, b"5.1.1 unknown")})),
        Expect(PermanentDeliveryError, 550),
    ),
    "sender_refused": (
        FakeSMTPFactory(on_send=smtplib.SMTPSenderRefused(553, b"5.1.8 bad sender", "a@b")),
        Expect(PermanentDeliveryError, 553),
    ),
    "data_temporary": (
        FakeSMTPFactory(on_send=smtplib.SMTPDataError(451, b"4.3.0 local error")),
        Expect(TransientDeliveryError, 451),
    ),
    "data_rejected": (
        FakeSMTPFactory(on_send=smtplib.SMTPDataError(554, b"5.7.1 rejected " + b"x" * 500)),
        Expect(PermanentDeliveryError, 554),
    ),
}


UNUSED_TRANSPORT = httpx.MockTransport(respond(500))


def email_case(scenario: str, tmp_path: Path) -> tuple[Case, Expect]:
    if scenario == "template_error":
        return template_error_case("email", tmp_path), Expect(PermanentDeliveryError)
    if scenario == "blocked_address":
        factory = FakeSMTPFactory()
        sender = build_registry(SETTINGS, UNUSED_TRANSPORT, factory)["email"]
        return Case(sender, {"email": "x@example.com\r\nBcc: all@example.com"}), Expect(
            PermanentDeliveryError
        )
    factory, expect = EMAIL_SCENARIOS[scenario]
    settings = SETTINGS.model_copy(update={"smtp_password": SMTP_PASSWORD})
    sender = build_registry(settings, UNUSED_TRANSPORT, factory)["email"]
    return Case(sender, CONFIGS["email"]), expect


# -- the contract ------------------------------------------------------------------------------

COMMON = ["template_error", "blocked_address"]
CASES = [
    *(("webhook", name) for name in [*HTTP_SCENARIOS, *COMMON]),
    *(("slack", name) for name in [*HTTP_SCENARIOS, *COMMON]),
    *(("email", name) for name in [*EMAIL_SCENARIOS, *COMMON]),
]


def make_case(method: str, scenario: str, tmp_path: Path) -> tuple[Case, Expect]:
    if method == "email":
        return email_case(scenario, tmp_path)
    return http_case(method, scenario, tmp_path)


def test_every_registered_sender_is_under_contract() -> None:
    registry = build_registry(SETTINGS, UNUSED_TRANSPORT, FakeSMTPFactory())
    assert tuple(registry) == METHODS
    assert {method for method, _ in CASES} == set(METHODS)
    for method, sender in registry.items():
        assert sender.method == method


@pytest.mark.parametrize(("method", "scenario"), CASES)
def test_contract(method: str, scenario: str, tmp_path: Path) -> None:
    case, expect = make_case(method, scenario, tmp_path)
    outcome: Receipt | DeliveryError
    try:
        message = case.sender.render(context(), case.config)
        outcome = asyncio.run(case.send(message))
    except DeliveryError as exc:
        outcome = exc

    if expect.error is None:
        assert isinstance(outcome, Receipt), outcome
        assert outcome.status_code == expect.status_code
        return

    assert type(outcome) is expect.error, f"{type(outcome).__name__}: {outcome}"
    assert outcome.status_code == expect.status_code
    if isinstance(outcome, TransientDeliveryError):
        if expect.retry_after is None:
            assert outcome.retry_after is None
        else:
            low, high = expect.retry_after
            assert outcome.retry_after is not None
            assert low <= outcome.retry_after <= high
    kept = [outcome.message, str(outcome), outcome.response_excerpt or "", repr(outcome)]
    for secret in SECRETS:
        assert not any(secret in text for text in kept), f"{secret!r} leaked: {kept}"
    if outcome.response_excerpt is not None:
        assert len(outcome.response_excerpt.encode()) <= EXCERPT_BYTES
    if scenario == "echoes_url":
        assert outcome.response_excerpt == "bad request for ***"


@pytest.mark.parametrize("method", METHODS)
def test_describe_and_target_key_hide_secrets(method: str) -> None:
    registry = build_registry(SETTINGS, UNUSED_TRANSPORT, FakeSMTPFactory())
    sender = registry[method]
    described = sender.describe(CONFIGS[method])
    message = sender.render(context(), CONFIGS[method])
    for secret in SECRETS:
        assert secret not in described
        assert secret not in sender.target_key(CONFIGS[method])
        assert secret not in repr(message)
    assert (
        sender.target_key(CONFIGS[method])
        == {
            "webhook": "hooks.example.com",
            "slack": "hooks.slack.com",
            "email": f"{SETTINGS.smtp_host}:{SETTINGS.smtp_port}",
        }[method]
    )


@pytest.mark.parametrize("method", ["webhook", "slack"])
def test_http_senders_make_exactly_one_request(method: str) -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(503)

    sender = build_registry(SETTINGS, httpx.MockTransport(handler))[method]
    with pytest.raises(TransientDeliveryError):
        asyncio.run(sender.send(sender.render(context(), CONFIGS[method])))
    assert len(requests) == 1
    assert requests[0].method == "POST"
    assert requests[0].headers["content-type"] == "application/json"


def test_email_sender_uses_one_session_and_quits() -> None:
    factory = FakeSMTPFactory()
    sender = build_registry(SETTINGS, UNUSED_TRANSPORT, factory)["email"]
    asyncio.run(sender.send(sender.render(context(), CONFIGS["email"])))
    assert len(factory.sessions) == 1
    assert len(factory.sessions[0].sent) == 1
    assert factory.sessions[0].quit_called
