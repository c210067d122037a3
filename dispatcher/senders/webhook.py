"""The ``webhook`` method: POST the event data (or the notification's Quay JSON template applied
to it) as JSON, with Standard Webhooks headers.

Config: ``url`` (http/https, required), ``template`` (optional string holding a Quay JSON
template; ``""`` means none), ``secret`` (optional ``whsec_<base64>``; enables signing),
``rate_limit`` (optional messages per second, see :mod:`dispatcher.senders.ratelimit`).

Headers: ``Content-Type: application/json``, ``webhook-id`` (the delivery id, stable across
retries), ``webhook-timestamp`` (the attempt time, integer seconds) and, with a secret,
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` over exactly the bytes
sent. The TLS client certificate, if configured, lives in the HTTP transport
(:func:`dispatcher.senders.transport.make_http_transport`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from dispatcher.config import Settings
from dispatcher.configfields import ConfigField
from dispatcher.errors import InvalidFieldError, InvalidRequestError, PermanentDeliveryError
from dispatcher.senders import http
from dispatcher.senders.base import Receipt, RenderContext
from dispatcher.senders.jsontemplate import JSONTemplateError, compile_template, validate_template
from dispatcher.senders.netguard import check_url

SECRET_PREFIX = "whsec_"
_MIN_SECRET_BYTES = 16
_MAX_SECRET_BYTES = 64

CONFIG_FIELDS = (
    ConfigField(
        name="url",
        label="Webhook URL",
        widget="url",
        required=True,
        help="http or https; the event is POSTed here as JSON",
        example="https://hooks.example.com/registry",
    ),
    ConfigField(
        name="template",
        label="Body template",
        widget="textarea",
        help='Optional Quay JSON template, e.g. {"repo": "${repository}"}',
        example='{"repo": "${repository}"}',
    ),
    ConfigField(
        name="secret",
        label="Signing secret",
        widget="password",
        help="Optional whsec_… secret; enables Standard Webhooks signatures",
        example="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ),
)


@dataclass(frozen=True)
class WebhookMessage:
    """One rendered webhook request. ``secrets`` are fragments to keep out of errors."""

    url: str
    body: bytes
    headers: tuple[tuple[str, str], ...]
    target: str
    secrets: tuple[str, ...]

    def __repr__(self) -> str:
        return f"WebhookMessage(target={self.target!r}, {len(self.body)} bytes)"


def validate_config(config: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Quay's checks (``Missing webhook URL``, ``Invalid webhook URL``, template messages)
    plus the optional signing secret. Returns ``config`` unchanged."""
    url = config.get("url")
    if not isinstance(url, str) or not url.strip():
        raise InvalidFieldError("Missing webhook URL", location=("config", "url"))
    try:
        check_url(url, settings)
    except InvalidRequestError as exc:
        raise InvalidFieldError(exc.message, location=("config", "url")) from None
    template = config.get("template")
    if template is not None:
        if not isinstance(template, str):
            raise InvalidFieldError(
                "Webhook template must be a string containing JSON, e.g. "
                '"{\\"repo\\": \\"${repository}\\"}"',
                location=("config", "template"),
            )
        if template.strip():
            try:
                validate_template(template, settings.max_json_depth, settings.max_expression_chars)
            except JSONTemplateError as exc:
                raise InvalidFieldError(str(exc), location=("config", "template")) from None
    secret = config.get("secret")
    if secret is not None and secret != "":
        _secret_key(secret)
    return config


def _secret_key(secret: Any) -> bytes:
    """The HMAC key of a ``whsec_`` secret; InvalidFieldError (never echoing it) if bad."""
    where = ("config", "secret")
    message = (
        "Webhook secret must be 'whsec_' followed by base64 of "
        f"{_MIN_SECRET_BYTES} to {_MAX_SECRET_BYTES} random bytes"
    )
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise InvalidFieldError(message, location=where)
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidFieldError(message, location=where) from None
    if not _MIN_SECRET_BYTES <= len(key) <= _MAX_SECRET_BYTES:
        raise InvalidFieldError(message, location=where)
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks v1 signature header value for one request."""
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class WebhookSender(http.HttpSender):
    """Delivers ``webhook`` notifications through the injected (guarded) httpx client."""

    method: ClassVar[str] = "webhook"
    path_is_secret: ClassVar[bool] = False

    def render(self, context: RenderContext, config: dict[str, Any]) -> WebhookMessage:
        """Pure: the body is the event data or the applied template, serialised once; the
        signature covers exactly those bytes. PermanentDeliveryError for a bad template or
        secret."""
        url = str(config.get("url", ""))
        template = config.get("template")
        payload: Any = context.data
        if isinstance(template, str) and template.strip():
            try:
                settings = self._settings
                payload = compile_template(
                    template, settings.max_json_depth, settings.max_expression_chars
                ).apply(context.data)
            except JSONTemplateError as exc:
                raise PermanentDeliveryError(f"webhook template: {exc}") from None
        try:
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        except (ValueError, RecursionError) as exc:  # stored before event data was bounded
            raise PermanentDeliveryError(
                f"webhook body cannot be encoded: {type(exc).__name__}"
            ) from None
        timestamp = int(context.attempt_at.timestamp())
        headers = [
            ("Content-Type", "application/json"),
            ("webhook-id", context.delivery_id),
            ("webhook-timestamp", str(timestamp)),
        ]
        secret = config.get("secret")
        secrets = http.url_secrets(url, path_is_secret=False)
        if secret:
            try:
                key = _secret_key(secret)
            except InvalidRequestError as exc:
                raise PermanentDeliveryError(f"webhook secret: {exc.message}") from None
            headers.append(("webhook-signature", sign(key, context.delivery_id, timestamp, body)))
            secrets.append(str(secret))
        return WebhookMessage(
            url=url,
            body=body,
            headers=tuple(headers),
            target=http.mask_url(url, hide_path=False),
            secrets=tuple(secrets),
        )

    async def send(self, message: WebhookMessage) -> Receipt:
        return await http.post(
            self._transport,
            self._settings,
            url=message.url,
            body=message.body,
            headers=dict(message.headers),
            label="webhook",
            target=message.target,
            secrets=message.secrets,
        )
