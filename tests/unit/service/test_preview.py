"""``dispatcher.service.preview``: the request a delivery sent, rebuilt with the sender's render,
with every secret masked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from dispatcher.config import Settings
from dispatcher.models import Attempt, Delivery, Event, Notification, Repository
from dispatcher.senders.webhook import WebhookSender
from dispatcher.service.preview import request_preview
from tests.unit.senders.render_helpers import sample_context

AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SETTINGS = Settings(server_hostname="quay.example.com", preferred_url_scheme="https")


def delivery_of(
    method: str, config: dict[str, Any], *, attempts: int = 1, data: dict[str, Any] | None = None
) -> tuple[Delivery, Notification]:
    repository = Repository(namespace="acme", name="web")
    notification = Notification(
        uuid="uuid-1",
        repository=repository,
        event="repo_push",
        method=method,
        config=config,
        event_config={},
        title=None,
    )
    sample = sample_context("repo_push", at=AT, delivery_id="d-1").data
    event = Event(name="repo_push", data=data or sample, performer=None)
    delivery = Delivery(id="d-1", event=event, kind="event", status="failed", created_at=AT)
    delivery.attempts = [
        Attempt(number=n, started_at=AT + timedelta(seconds=n), outcome="transient", latency_ms=1)
        for n in range(1, attempts + 1)
    ]
    return delivery, notification


def test_webhook_shows_headers_and_body_with_the_signature_masked() -> None:
    config = {"url": "https://hooks.example.com/h?api_key=k3y", "secret": SECRET}
    delivery, notification = delivery_of("webhook", config, attempts=2)
    preview = request_preview(delivery, notification, SETTINGS)
    assert preview.error is None
    assert (preview.verb, preview.target) == ("POST", "https://hooks.example.com/h?***")
    headers = dict(preview.headers)
    assert headers["webhook-id"] == "d-1"
    # the time of the latest attempt, as the worker rendered it then
    assert headers["webhook-timestamp"] == str(int((AT + timedelta(seconds=2)).timestamp()))
    assert headers["webhook-signature"] == "v1,***"
    sent = WebhookSender(SETTINGS, None).render(  # type: ignore[arg-type]
        sample_context("repo_push", at=AT, delivery_id="d-1"), config
    )
    assert json.loads(preview.body) == json.loads(sent.body)
    shown = repr(preview)
    assert "k3y" not in shown and SECRET not in shown and "whsec_Mf" not in shown
    assert dict(sent.headers)["webhook-signature"].split(",")[1] not in shown


def test_webhook_body_is_the_applied_template_and_secrets_in_data_are_masked() -> None:
    config = {"url": "https://hooks.example.com/h", "template": '{"repo": "${repository}"}'}
    delivery, notification = delivery_of("webhook", config)
    assert json.loads(request_preview(delivery, notification, SETTINGS).body) == {
        "repo": "acme/web"
    }
    leaky = {"repository": "acme/web", "note": f"secret is {SECRET}"}
    delivery, notification = delivery_of("webhook", {"url": "https://x.example.com"}, data=leaky)
    body = request_preview(delivery, notification, SETTINGS).body
    assert SECRET not in body and "whsec_***" in body


def test_slack_hides_the_hook_path() -> None:
    url = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
    delivery, notification = delivery_of("slack", {"url": url})
    preview = request_preview(delivery, notification, SETTINGS)
    assert preview.target == "https://hooks.slack.com/***"
    assert "XXXXSECRET" not in repr(preview)
    assert json.loads(preview.body)["text"].startswith("Repository acme/web updated")


def test_email_shows_its_headers_and_text() -> None:
    delivery, notification = delivery_of("email", {"email": "ops@example.com"})
    preview = request_preview(delivery, notification, SETTINGS)
    headers = dict(preview.headers)
    assert (preview.verb, preview.target, headers["To"]) == (
        "SMTP",
        "ops@example.com",
        "ops@example.com",
    )
    assert headers["Subject"] == "Repository acme/web updated"
    assert "acme/web" in preview.body


def test_a_delivery_that_cannot_be_rendered_says_why() -> None:
    config = {"url": "https://hooks.example.com/h", "template": '{"a": "${}"}'}
    delivery, notification = delivery_of("webhook", config)
    preview = request_preview(delivery, notification, SETTINGS)
    assert preview.error is not None and "template" in preview.error
    delivery, notification = delivery_of("pager", {})
    assert request_preview(delivery, notification, SETTINGS).error == "No sender for method 'pager'"
