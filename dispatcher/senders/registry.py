"""The explicit registry of delivery methods: ``webhook``, ``slack``, ``email``.

* :func:`config_fields` describes each method's config fields, for forms.
* :func:`validate_config` checks a create request's ``config`` for a method without building
  any sender (the API calls it); Quay's legacy ``hipchat``, ``flowdock`` and
  ``quay_notification`` are unknown here. Every method's config may carry ``rate_limit``
  (:mod:`dispatcher.senders.ratelimit`), and :func:`rate_limit` says what a delivery goes at.
* :func:`build_registry` builds the senders a worker uses, with its collaborators injected:
  the guarded, pooled httpx transport (:func:`dispatcher.senders.transport.make_http_transport`)
  and a factory of SMTP sessions (default: :func:`dispatcher.senders.email.smtp_factory`).
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from dispatcher.config import Settings
from dispatcher.configfields import ConfigField
from dispatcher.errors import UnknownMethodError
from dispatcher.senders import email, ratelimit, slack, webhook
from dispatcher.senders.base import Sender
from dispatcher.senders.ratelimit import RateLimit

METHODS: tuple[str, ...] = ("webhook", "slack", "email")

_VALIDATORS: Mapping[str, Callable[[dict[str, Any], Settings], dict[str, Any]]] = {
    "webhook": webhook.validate_config,
    "slack": slack.validate_config,
    "email": email.validate_config,
}

_FIELDS: Mapping[str, tuple[ConfigField, ...]] = {
    "webhook": webhook.CONFIG_FIELDS,
    "slack": slack.CONFIG_FIELDS,
    "email": email.CONFIG_FIELDS,
}

_DESCRIBERS: Mapping[str, Callable[[dict[str, Any]], str]] = {
    "webhook": webhook.WebhookSender.describe,
    "slack": slack.SlackSender.describe,
    "email": email.EmailSender.describe,
}

# Where each method delivers (the endpoint a rate limit's bucket is named after), and the
# rate a method goes at when its notification names none.
_ENDPOINT_FIELDS: Mapping[str, str] = {"webhook": "url", "slack": "url", "email": "email"}
_DEFAULT_RATE_LIMITS: Mapping[str, float] = {"slack": slack.DEFAULT_RATE_LIMIT}

__all__ = [
    "METHODS",
    "build_registry",
    "config_fields",
    "describe_target",
    "rate_limit",
    "validate_config",
]


def validate_config(method: str, config: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The config to store for ``method`` (as submitted). Raises UnknownMethodError for a
    method not in :data:`METHODS`, InvalidRequestError with Quay's message for a bad config."""
    validator = _VALIDATORS.get(method)
    if validator is None:
        raise UnknownMethodError(method)
    stored = validator(config, settings)
    ratelimit.check(config)
    return stored


def config_fields(method: str) -> tuple[ConfigField, ...]:
    """The fields of ``method``'s config, in form order (``rate_limit`` last, for every
    method); UnknownMethodError if not in :data:`METHODS`."""
    fields = _FIELDS.get(method)
    if fields is None:
        raise UnknownMethodError(method)
    return (*fields, ratelimit.CONFIG_FIELD)


def describe_target(method: str, config: dict[str, Any]) -> str:
    """Where a notification of ``method`` delivers, secrets masked (``***`` for an unknown
    method); the sender's own :meth:`~dispatcher.senders.base.Sender.describe`."""
    describe = _DESCRIBERS.get(method)
    return describe(config) if describe is not None else "***"


def rate_limit(method: str, config: dict[str, Any], settings: Settings) -> RateLimit | None:
    """The rate deliveries of a ``method`` notification with ``config`` go at, and the bucket
    they share; None when they are not paced (or ``method`` is not in :data:`METHODS`)."""
    endpoint_field = _ENDPOINT_FIELDS.get(method)
    if endpoint_field is None:
        return None
    return ratelimit.resolve(
        method,
        str(config.get(endpoint_field, "")),
        config,
        _DEFAULT_RATE_LIMITS.get(method),
        settings.default_rate_limit,
    )


def build_registry(
    settings: Settings,
    http_transport: httpx.AsyncBaseTransport,
    smtp_factory: Callable[[], smtplib.SMTP] | None = None,
) -> Mapping[str, Sender]:
    """``{method: sender}`` for every method in :data:`METHODS`, sharing ``http_transport``."""
    senders: tuple[Sender, ...] = (
        webhook.WebhookSender(settings, http_transport),
        slack.SlackSender(settings, http_transport),
        email.EmailSender(settings, smtp_factory),
    )
    return {sender.method: sender for sender in senders}
