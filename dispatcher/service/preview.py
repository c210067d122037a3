"""The request a delivery sent, rebuilt for people to read, with every secret masked.

Nothing stores the bytes sent; :func:`request_preview` renders the delivery again with its
sender's pure ``render`` from the stored event, the notification's config and the time of
its latest attempt, which gives the same request (templates on disk aside). Then the
signature, the signing secret, URL credentials and query strings, Slack hook paths and every
pattern :func:`dispatcher.ops.logs.scrub` knows are replaced by ``***``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from dispatcher.config import Settings
from dispatcher.errors import DispatcherError
from dispatcher.events import get_event
from dispatcher.models import Delivery, Notification
from dispatcher.ops.logs import MASK, scrub
from dispatcher.senders.base import RenderContext
from dispatcher.senders.email import EmailMessageData
from dispatcher.senders.http import scrub as scrub_fragments
from dispatcher.senders.registry import build_registry
from dispatcher.senders.slack import SlackMessage
from dispatcher.senders.webhook import WebhookMessage

_SIGNATURE_HEADER = "webhook-signature"


@dataclass(frozen=True)
class RequestPreview:
    """``verb`` is ``POST`` or ``SMTP``; ``error`` says why there is nothing to show."""

    verb: str = ""
    target: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""
    error: str | None = None


class _NoNetwork(httpx.AsyncBaseTransport):
    """The senders want a transport; rendering never uses it."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a preview sends nothing")


def request_preview(
    delivery: Delivery, notification: Notification, settings: Settings
) -> RequestPreview:
    """The request ``delivery`` sent (or will send), secrets masked. ``delivery`` needs its
    event and attempts loaded (as :mod:`dispatcher.service.delivery_log` loads them)."""
    sender = build_registry(settings, _NoNetwork()).get(notification.method)
    if sender is None:
        return RequestPreview(error=f"No sender for method '{notification.method}'")
    attempts = delivery.attempts
    repository = notification.repository
    try:
        context = RenderContext(
            event=get_event(delivery.event.name),
            data=delivery.event.data,
            namespace=repository.namespace,
            repository=repository.name,
            notification_uuid=notification.uuid,
            title=notification.title,
            delivery_id=delivery.id,
            attempt_at=attempts[-1].started_at if attempts else delivery.created_at,
            performer=delivery.event.performer,
        )
        message = sender.render(context, notification.config or {})
    except DispatcherError as exc:
        return RequestPreview(error=scrub(exc.message))
    return _view(message)


def _view(message: Any) -> RequestPreview:
    if isinstance(message, WebhookMessage):
        headers = tuple(
            (name, f"v1,{MASK}" if name.lower() == _SIGNATURE_HEADER else value)
            for name, value in message.headers
        )
        body = _masked(_readable(message.body.decode("utf-8", "replace")), message.secrets)
        return RequestPreview("POST", message.target, headers, body)
    if isinstance(message, SlackMessage):
        body = json.dumps(message.payload, ensure_ascii=False, indent=2)
        headers = (("Content-Type", "application/json"),)
        return RequestPreview("POST", message.target, headers, _masked(body, message.secrets))
    if isinstance(message, EmailMessageData):
        headers = (
            ("From", message.sender),
            ("To", message.recipient),
            ("Subject", message.subject),
            ("Date", message.date),
            ("Message-ID", message.message_id),
        )
        return RequestPreview("SMTP", message.recipient, headers, scrub(message.text))
    return RequestPreview(error="No preview for this method")


def _readable(body: str) -> str:
    """JSON indented for reading (what was sent is the same value, compact)."""
    try:
        return json.dumps(json.loads(body), ensure_ascii=False, indent=2)
    except ValueError:
        return body


def _masked(text: str, secrets: tuple[str, ...]) -> str:
    return scrub(scrub_fragments(text, secrets))
