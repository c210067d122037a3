"""The ``slack`` method: POST Quay's payload to a Slack incoming-webhook URL.

Config: ``url`` (required), ``rate_limit`` (optional, messages per second; by default
:data:`DEFAULT_RATE_LIMIT`, see :mod:`dispatcher.senders.ratelimit`). The payload is Quay's::

    {"text": summary, "username": "quayiobot",
     "attachments": [{"fallback": summary, "text": <mrkdwn>, "color": <by level>,
                      "mrkdwn_in": ["text"]}]}

The attachment text comes from ``templates/slack/<event>.txt`` (or ``_default.txt``), written in
Slack mrkdwn; event data in it is escaped. The URL's path is the webhook's secret: it is never
shown. Slack's 400/403/404/410 answers are permanent (see :mod:`dispatcher.senders.http`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from dispatcher.config import Settings
from dispatcher.configfields import ConfigField
from dispatcher.errors import InvalidFieldError, InvalidRequestError, PermanentDeliveryError
from dispatcher.senders import http
from dispatcher.senders.base import Receipt, RenderContext
from dispatcher.senders.netguard import check_url
from dispatcher.senders.rendering import environments, message_variables, mrkdwn_escape, render

USERNAME = "quayiobot"
COLORS = {
    "info": "#ffffff",
    "warning": "warning",
    "error": "danger",
    "success": "good",
    "primary": "good",
}
DEFAULT_COLOR = "#ffffff"
# Messages per second to one Slack webhook unless its notification says otherwise: the limit
# Slack documents for incoming webhooks (beyond it Slack answers 429).
DEFAULT_RATE_LIMIT = 1.0

CONFIG_FIELDS = (
    ConfigField(
        name="url",
        label="Slack webhook URL",
        widget="url",
        required=True,
        help="The incoming-webhook URL Slack gave you",
        example="https://hooks.slack.com/services/T000/B000/XXXX",
    ),
)


@dataclass(frozen=True)
class SlackMessage:
    """One rendered Slack post; ``payload`` is the JSON object sent."""

    url: str
    payload: dict[str, Any]
    body: bytes
    target: str
    secrets: tuple[str, ...]

    def __repr__(self) -> str:
        return f"SlackMessage(target={self.target!r})"


def validate_config(config: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """``Missing Slack Callback URL``; ``Invalid Slack Callback URL`` for a URL the webhook
    rules reject (scheme, localhost, non-public literal address). Returns ``config``."""
    url = config.get("url")
    where = ("config", "url")
    if not isinstance(url, str) or not url.strip():
        raise InvalidFieldError("Missing Slack Callback URL", location=where)
    try:
        check_url(url, settings)
    except InvalidRequestError:
        raise InvalidFieldError("Invalid Slack Callback URL", location=where) from None
    return config


class SlackSender(http.HttpSender):
    """Delivers ``slack`` notifications through the injected (guarded) httpx client."""

    method: ClassVar[str] = "slack"
    path_is_secret: ClassVar[bool] = True

    def render(self, context: RenderContext, config: dict[str, Any]) -> SlackMessage:
        """Pure. PermanentDeliveryError if the template fails or the event data lacks a field
        the summary needs."""
        variables = message_variables(context, self._settings)
        env = environments(self._settings.templates_dir).mrkdwn
        text = render(env, "slack", context.event.name, ".txt", variables).strip()
        summary = variables["summary"]
        url = str(config.get("url", ""))
        payload = {
            "text": mrkdwn_escape(summary),
            "username": USERNAME,
            "attachments": [
                {
                    "fallback": summary,
                    "text": text,
                    "color": COLORS.get(variables["level"], DEFAULT_COLOR),
                    "mrkdwn_in": ["text"],
                }
            ],
        }
        try:
            body = json.dumps(payload, ensure_ascii=False).encode()
        except (ValueError, RecursionError) as exc:  # stored before event data was bounded
            raise PermanentDeliveryError(
                f"Slack message cannot be encoded: {type(exc).__name__}"
            ) from None
        return SlackMessage(
            url=url,
            payload=payload,
            body=body,
            target=http.mask_url(url, hide_path=True),
            secrets=tuple(http.url_secrets(url, path_is_secret=True)),
        )

    async def send(self, message: SlackMessage) -> Receipt:
        return await http.post(
            self._transport,
            self._settings,
            url=message.url,
            body=message.body,
            headers={"Content-Type": "application/json"},
            label="Slack",
            target=message.target,
            secrets=message.secrets,
        )
