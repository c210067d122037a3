"""Each sender's render of every event's sample data, compared with reviewed golden files.

Regenerate after an intended change with ``DISPATCHER_UPDATE_GOLDEN=1 pytest tests/unit`` and
read the diff before committing it.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from dispatcher.config import Settings
from dispatcher.events import EVENT_NAMES
from dispatcher.senders.base import RenderContext
from dispatcher.senders.email import EmailMessageData
from dispatcher.senders.registry import build_registry
from dispatcher.senders.slack import SlackMessage
from dispatcher.senders.webhook import WebhookMessage
from tests.unit.senders import render_helpers

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("DISPATCHER_UPDATE_GOLDEN") == "1"
NOW = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
SETTINGS = Settings(
    server_hostname="quay.example.com",
    preferred_url_scheme="https",
    mail_from="Registry <registry@example.com>",
)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CONFIGS: dict[str, dict[str, Any]] = {
    "webhook": {"url": "https://hooks.example.com/quay?token=t0ps3cret", "secret": SECRET},
    "slack": {"url": "https://hooks.slack.com/services/T000/B000/XXXXXXXX"},
    "email": {"email": "ops@example.com"},
}
EVENT_CONFIGS: dict[str, dict[str, Any]] = {
    "vulnerability_found": {"level": 1},
    "repo_image_expiry": {"days": 5},
}
PERFORMED = {"repo_push", "repo_mirror_sync_failed", "build_cancelled"}


def sample_context(event_name: str) -> RenderContext:
    return render_helpers.sample_context(
        event_name,
        at=NOW,
        delivery_id="msg_2f7c9a1e",
        event_config=EVENT_CONFIGS.get(event_name),
        notification_uuid="5b9c1f9e-3f4a-4f0e-9d59-1c2d3e4f5a6b",
        title="Team alerts",
        performer={"entity_id": 7, "entity_name": "alice"} if event_name in PERFORMED else None,
    )


def show(message: Any) -> str:
    """A stable, readable text form of a rendered message."""
    if isinstance(message, WebhookMessage):
        headers = "".join(f"{name}: {value}\n" for name, value in message.headers)
        body = json.dumps(json.loads(message.body), indent=2, sort_keys=True)
        return f"POST {message.target}\n{headers}\n{message.body.decode()}\n\n{body}\n"
    if isinstance(message, SlackMessage):
        return f"POST {message.target}\n\n{json.dumps(message.payload, indent=2)}\n"
    assert isinstance(message, EmailMessageData)
    return (
        f"Subject: {message.subject}\nFrom: {message.sender}\nTo: {message.recipient}\n"
        f"Message-ID: {message.message_id}\nDate: {message.date}\n"
        f"\n----- text/plain -----\n{message.text}\n----- text/html -----\n{message.html}"
    )


@pytest.fixture(scope="module")
def registry() -> Any:
    # rendering sends nothing: any request is a failure
    return build_registry(SETTINGS, httpx.MockTransport(lambda request: httpx.Response(599)))


@pytest.mark.parametrize("event_name", EVENT_NAMES)
@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_render_matches_golden(registry: Any, method: str, event_name: str) -> None:
    rendered = show(registry[method].render(sample_context(event_name), CONFIGS[method]))
    path = GOLDEN / method / f"{event_name}.txt"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered)
    assert path.exists(), f"no golden file {path}; run with DISPATCHER_UPDATE_GOLDEN=1"
    assert rendered == path.read_text()


def test_webhook_template_render_matches_golden(registry: Any) -> None:
    config = {
        "url": "https://hooks.example.com/quay",
        "template": json.dumps(
            {
                "text": "${repository} pushed: ${updated_tags}",
                "tags": "${updated_tags[*]}",
                "first": "${updated_tags[0]}",
                "missing": "${nope}",
                "${name}": {"homepage": "${homepage}"},
            }
        ),
    }
    rendered = show(registry["webhook"].render(sample_context("repo_push"), config))
    path = GOLDEN / "webhook" / "repo_push.template.txt"
    if UPDATE:
        path.write_text(rendered)
    assert rendered == path.read_text()


def test_every_event_has_its_own_templates() -> None:
    templates = SETTINGS.templates_dir
    for event_name in EVENT_NAMES:
        assert (templates / "slack" / f"{event_name}.txt").exists()
        assert (templates / "email" / f"{event_name}.txt").exists()
        assert (templates / "email" / f"{event_name}.html").exists()
