"""What each method puts on the wire, beyond the shared failure contract."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import smtplib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from dispatcher.config import Settings
from dispatcher.errors import PermanentDeliveryError, TransientDeliveryError
from dispatcher.senders.base import RenderContext
from dispatcher.senders.http import mask_url, parse_retry_after
from dispatcher.senders.registry import build_registry
from tests.unit.senders.render_helpers import sample_context

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SETTINGS = Settings(server_hostname="quay.example.com", preferred_url_scheme="https")
HOSTILE = "<script>alert(1)</script> & <https://evil.example|click>"


def _no_http(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"unexpected HTTP request to {request.url}")


NO_HTTP = httpx.MockTransport(_no_http)


def context(event_name: str = "repo_push", **extra: Any) -> RenderContext:
    return sample_context(
        event_name,
        at=datetime.now(UTC),
        delivery_id="msg_abc123",
        extra=extra,
        performer={"entity_name": "alice"},
    )


class Capture:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, text="ok")


def sender_with_capture(method: str) -> tuple[Any, Capture]:
    capture = Capture()
    return build_registry(SETTINGS, httpx.MockTransport(capture))[method], capture


# -- webhook -----------------------------------------------------------------------------------


def test_webhook_signature_verifies_with_the_standard_webhooks_library() -> None:
    sender, capture = sender_with_capture("webhook")
    config = {"url": "https://hooks.example.com/in", "secret": SECRET}
    ctx = context()
    receipt = asyncio.run(sender.send(sender.render(ctx, config)))
    assert receipt.status_code == 200
    request = capture.requests[0]
    headers = dict(request.headers)
    assert headers["webhook-id"] == "msg_abc123"
    assert headers["webhook-timestamp"] == str(int(ctx.attempt_at.timestamp()))
    assert headers["content-type"] == "application/json"
    assert Webhook(SECRET).verify(request.content, headers) == ctx.data


def test_webhook_signature_fails_for_another_secret_or_body() -> None:
    sender, capture = sender_with_capture("webhook")
    asyncio.run(
        sender.send(sender.render(context(), {"url": "https://h.example.com/", "secret": SECRET}))
    )
    request = capture.requests[0]
    headers = dict(request.headers)
    other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(other).verify(request.content, headers)
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(SECRET).verify(request.content + b" ", headers)


def test_webhook_without_secret_is_not_signed_and_body_is_the_event_data() -> None:
    sender, capture = sender_with_capture("webhook")
    ctx = context()
    asyncio.run(
        sender.send(sender.render(ctx, {"url": "https://hooks.example.com/in", "template": ""}))
    )
    request = capture.requests[0]
    assert "webhook-signature" not in request.headers
    assert json.loads(request.content) == ctx.data
    assert str(request.url) == "https://hooks.example.com/in"


def test_webhook_template_body() -> None:
    sender, capture = sender_with_capture("webhook")
    config = {"url": "https://h.example.com/", "template": '{"repo": "${repository}"}'}
    asyncio.run(sender.send(sender.render(context(), config)))
    assert json.loads(capture.requests[0].content) == {"repo": "acme/web"}


def test_webhook_render_is_pure_and_stable() -> None:
    sender, capture = sender_with_capture("webhook")
    ctx = context()
    config = {"url": "https://h.example.com/", "secret": SECRET}
    assert sender.render(ctx, config) == sender.render(ctx, config)
    assert capture.requests == []


# -- slack -------------------------------------------------------------------------------------


def test_slack_payload_shape() -> None:
    sender, capture = sender_with_capture("slack")
    asyncio.run(
        sender.send(sender.render(context("build_failure"), {"url": "https://hooks.slack.com/s/x"}))
    )
    payload = json.loads(capture.requests[0].content)
    assert set(payload) == {"text", "username", "attachments"}
    assert payload["text"] == "Build failure for repository acme/web [fake-bu]"
    assert payload["username"] == "quayiobot"
    (attachment,) = payload["attachments"]
    assert attachment["fallback"] == payload["text"]
    assert attachment["color"] == "danger"
    assert attachment["mrkdwn_in"] == ["text"]
    assert attachment["text"].endswith("\nThis is a fake error message")


@pytest.mark.parametrize(
    ("event_name", "color"),
    [
        ("repo_push", "good"),
        ("build_queued", "#ffffff"),
        ("build_success", "good"),
        ("build_failure", "danger"),
        ("repo_mirror_sync_failed", "danger"),
    ],
)
def test_slack_colors_follow_the_level(event_name: str, color: str) -> None:
    sender, _ = sender_with_capture("slack")
    message = sender.render(context(event_name), {"url": "https://hooks.slack.com/s/x"})
    assert message.payload["attachments"][0]["color"] == color


def test_slack_escapes_event_data() -> None:
    sender, _ = sender_with_capture("slack")
    message = sender.render(
        context("repo_push", updated_tags=[HOSTILE]), {"url": "https://hooks.slack.com/s/x"}
    )
    text = message.payload["attachments"][0]["text"]
    assert "<script>" not in text
    assert "<https://evil.example|click>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;https://evil.example|click&gt;" in text
    assert text.startswith("*alice* pushed <https://quay.example.com/repository/acme/web?tag=")


def test_slack_mirror_message_escapes_in_summary_too() -> None:
    sender, _ = sender_with_capture("slack")
    message = sender.render(
        context("repo_mirror_sync_failed", message="<!channel> & co"),
        {"url": "https://hooks.slack.com/s/x"},
    )
    assert message.payload["text"] == "Repository Mirror failed for &lt;!channel&gt; &amp; co"
    assert "<!channel>" not in message.payload["attachments"][0]["text"]


def slack_text(ctx: RenderContext) -> str:
    sender, _ = sender_with_capture("slack")
    message = sender.render(ctx, {"url": "https://hooks.slack.com/s/x"})
    text: str = message.payload["attachments"][0]["text"]
    return text


REPO_LINK = "<https://quay.example.com/repository/acme/web|acme/web>"


def tag_link(tag: str) -> str:
    return f"<https://quay.example.com/repository/acme/web?tag={tag}&amp;tab=tags|{tag}>"


@pytest.mark.parametrize(
    ("event_name", "verb"),
    [("build_failure", "failure"), ("build_cancelled", "canceled"), ("build_success", "completed")],
)
def test_slack_build_verbs_are_quays(event_name: str, verb: str) -> None:
    assert slack_text(context(event_name)).startswith(
        f"<https://quay.example.com/repository/acme/web/build/fake-build-id|Build fake-bu> {verb} "
        "for change "
    )


def test_slack_one_vulnerability_reads_as_quays_whatever_its_priority() -> None:
    ctx = context(
        "vulnerability_found",
        tags=["v1"],
        vulnerability={"id": "CVE-1", "priority": "Unknown", "link": "https://cve.example/1"},
    )
    assert slack_text(ctx) == (
        "A <https://cve.example/1|Unknown vulnerability> (CVE-1) was detected in tags/manifests "
        f"{tag_link('v1')} in repository {REPO_LINK}"
    )


def test_slack_a_list_of_vulnerabilities_reads_as_quays() -> None:
    ctx = context(
        "vulnerability_found",
        tags=["a", "b", "c", "d"],
        vulnerabilities=[{"priority": "High"}, {"priority": "Low"}],
    )
    shown = ", ".join(tag_link(tag) for tag in ("a", "b", "c"))
    assert slack_text(ctx) == (
        f"2 vulnerabilities were detected in tags {shown} (and 1 more) in repository {REPO_LINK}"
    )


@pytest.mark.parametrize(
    "event_name",
    ["repo_mirror_sync_started", "repo_mirror_sync_success", "repo_mirror_sync_failed"],
)
def test_slack_mirror_text_is_the_performer_and_the_message(event_name: str) -> None:
    assert slack_text(context(event_name, message="'src' with tag pattern 'v*'")) == (
        "*alice* 'src' with tag pattern 'v*'"
    )
    anonymous = sample_context(
        event_name, at=datetime.now(UTC), delivery_id="d", extra={"message": "sync of x"}
    )
    assert slack_text(anonymous) == "sync of x"


# -- email -------------------------------------------------------------------------------------


class RecordingSMTP:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    def send_message(self, message: Any) -> dict[str, Any]:
        self.messages.append(message.as_bytes())
        return {}

    def quit(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_email_is_multipart_alternative_with_escaped_html() -> None:
    session = RecordingSMTP()
    settings = SETTINGS.model_copy(update={"mail_from": "Registry <registry@example.com>"})
    sender = build_registry(settings, NO_HTTP, lambda: session)["email"]  # type: ignore[arg-type, return-value]
    ctx = context("repo_push", updated_tags=[HOSTILE])
    asyncio.run(sender.send(sender.render(ctx, {"email": "ops@example.com"})))
    (raw,) = session.messages
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "Repository acme/web updated"
    assert parsed["From"] == "Registry <registry@example.com>"
    assert parsed["To"] == "ops@example.com"
    assert parsed["Message-ID"] == "<msg_abc123@example.com>"
    assert parsed["Date"]
    assert parsed.get_content_type() == "multipart/alternative"
    text_part, html_part = parsed.iter_parts()
    assert text_part.get_content_type() == "text/plain"
    assert html_part.get_content_type() == "text/html"
    assert HOSTILE in text_part.get_content()
    html = html_part.get_content()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_email_header_injection_is_impossible() -> None:
    sender = build_registry(SETTINGS, NO_HTTP, lambda: RecordingSMTP())["email"]  # type: ignore[arg-type, return-value]
    with pytest.raises(PermanentDeliveryError):
        sender.render(context(), {"email": "a@example.com\r\nBcc: everyone@example.com"})
    message = sender.render(
        context("repo_mirror_sync_started", message="x\r\nBcc: e@x.com"), {"email": "a@example.com"}
    )
    assert "\n" not in message.subject
    assert "\r" not in message.subject


def test_default_smtp_factory_connects_lazily() -> None:
    # Building the registry must not touch the network; only send() calls the factory.
    calls: list[int] = []

    def factory() -> smtplib.SMTP:
        calls.append(1)
        raise ConnectionRefusedError(111, "refused")

    registry = build_registry(SETTINGS, NO_HTTP, factory)
    assert calls == []
    message = registry["email"].render(context(), {"email": "a@example.com"})
    assert calls == []
    with pytest.raises(TransientDeliveryError, match="ConnectionRefusedError"):
        asyncio.run(registry["email"].send(message))
    assert calls == [1]


# -- rendering ---------------------------------------------------------------------------------


def test_operator_templates_run_in_a_sandbox(tmp_path: Path) -> None:
    (tmp_path / "slack").mkdir()
    (tmp_path / "slack" / "_default.txt").write_text(
        "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    )
    settings = SETTINGS.model_copy(update={"templates_dir": tmp_path})
    sender = build_registry(settings, NO_HTTP)["slack"]
    with pytest.raises(PermanentDeliveryError, match=r"SecurityError|unsafe"):
        sender.render(context(), {"url": "https://hooks.slack.com/s/x"})


def test_default_template_is_used_for_an_event_without_one(tmp_path: Path) -> None:
    (tmp_path / "slack").mkdir()
    (tmp_path / "slack" / "_default.txt").write_text("{{ summary }} ({{ event }})")
    settings = SETTINGS.model_copy(update={"templates_dir": tmp_path})
    sender = build_registry(settings, NO_HTTP)["slack"]
    message = sender.render(context(), {"url": "https://hooks.slack.com/s/x"})
    assert message.payload["attachments"][0]["text"] == "Repository acme/web updated (repo_push)"


def test_missing_event_data_is_a_permanent_error() -> None:
    sender, _ = sender_with_capture("slack")
    ctx = context("vulnerability_found")
    del ctx.data["vulnerability"]
    with pytest.raises(PermanentDeliveryError, match="vulnerability"):
        sender.render(ctx, {"url": "https://hooks.slack.com/s/x"})


# -- helpers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "hide_path", "shown"),
    [
        ("https://hooks.slack.com/services/T/B/X", True, "https://hooks.slack.com/***"),
        ("https://h.example.com/a/b?token=x", False, "https://h.example.com/a/b?***"),
        ("https://user:pw@h.example.com:8443/", False, "https://h.example.com:8443/"),
        ("http://[2001:db8::1]:81/x", False, "http://[2001:db8::1]:81/x"),
    ],
)
def test_mask_url(url: str, hide_path: bool, shown: str) -> None:
    assert mask_url(url, hide_path=hide_path) == shown


def test_parse_retry_after() -> None:
    assert parse_retry_after("12", 60) == 12
    assert parse_retry_after("120", 60) == 60
    assert parse_retry_after("-5", 60) == 0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 60, now=1445412460.0) == 20
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 60, now=1445412500.0) == 0
    assert parse_retry_after("later", 60) is None
    assert parse_retry_after(None, 60) is None
