"""The ``email`` method: a multipart/alternative message (plain text, then HTML) over SMTP.

Config: ``email`` (one address, required), ``rate_limit`` (optional messages per second, see
:mod:`dispatcher.senders.ratelimit`). Subject = the event summary; bodies from
``templates/email/<event>.txt`` and ``.html`` (or ``_default``), the HTML autoescaped; From is
``settings.mail_from``; ``Message-ID`` is derived from the delivery id (stable across retries)
and ``Date`` is the attempt time, so rendering stays pure.

SMTP replies follow RFC 5321: 4xx (and a 552 refusing the recipient, which RFC 5321 says to
treat as 452) are transient, other 5xx permanent; disconnects, timeouts and socket errors are
transient; TLS certificate failures and unsupported extensions are permanent.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, ClassVar

from email_validator import EmailNotValidError, validate_email

from dispatcher.config import Settings
from dispatcher.configfields import ConfigField
from dispatcher.errors import (
    InvalidFieldError,
    InvalidRequestError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from dispatcher.senders.base import Receipt, RenderContext
from dispatcher.senders.rendering import environments, message_variables, render

SMTPFactory = Callable[[], smtplib.SMTP]

CONFIG_FIELDS = (
    ConfigField(
        name="email",
        label="E-mail address",
        widget="email",
        required=True,
        help="One address",
        example="ops@example.com",
    ),
)
_WHERE = ("config", "email")


@dataclass(frozen=True)
class EmailMessageData:
    """One rendered e-mail; :meth:`to_message` builds the MIME message."""

    sender: str
    recipient: str
    subject: str
    text: str
    html: str
    message_id: str
    date: str

    def to_message(self) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = self.subject
        message["From"] = self.sender
        message["To"] = self.recipient
        message["Date"] = self.date
        message["Message-ID"] = self.message_id
        message.set_content(self.text)
        message.add_alternative(self.html, subtype="html")
        return message


def validate_config(config: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """``Missing e-mail address``; ``Invalid e-mail address`` for anything that is not one
    syntactically valid address (CR/LF included, so no header injection). Returns ``config``."""
    address = config.get("email")
    if address is None or address == "":
        raise InvalidFieldError("Missing e-mail address", location=_WHERE)
    _check_address(address)
    return config


def _check_address(address: Any) -> None:
    if not isinstance(address, str) or "\r" in address or "\n" in address:
        raise InvalidFieldError("Invalid e-mail address", location=_WHERE)
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        raise InvalidFieldError("Invalid e-mail address", location=_WHERE) from None


def mail_domain(settings: Settings) -> str:
    """The domain of ``mail_from``, for the ``Message-ID`` of the mails dispatcher sends."""
    return settings.mail_from.rpartition("@")[2].strip(" >") or "localhost"


def smtp_factory(settings: Settings) -> SMTPFactory:
    """A factory of connected (and, with a username, authenticated) SMTP sessions built from
    ``settings``: implicit TLS with ``smtp_ssl``, STARTTLS with ``smtp_starttls``, the timeout
    ``http_timeout``. The connection happens when the factory is called, not here."""

    def connect() -> smtplib.SMTP:
        timeout = settings.http_timeout
        if settings.smtp_ssl:
            context = ssl.create_default_context()
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.smtp_host, settings.smtp_port, timeout=timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
        try:
            if settings.smtp_starttls and not settings.smtp_ssl:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                password = (
                    settings.smtp_password.get_secret_value() if settings.smtp_password else ""
                )
                smtp.login(settings.smtp_username, password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    return connect


class EmailSender:
    """Delivers ``email`` notifications through SMTP sessions from the injected factory."""

    method: ClassVar[str] = "email"

    def __init__(self, settings: Settings, factory: SMTPFactory | None = None) -> None:
        self._settings = settings
        self._factory = factory or smtp_factory(settings)

    def target_key(self, config: dict[str, Any]) -> str:
        return f"{self._settings.smtp_host}:{self._settings.smtp_port}"

    @classmethod
    def describe(cls, config: dict[str, Any]) -> str:
        return str(config.get("email", ""))

    def render(self, context: RenderContext, config: dict[str, Any]) -> EmailMessageData:
        """Pure. PermanentDeliveryError for a template failure or an address that is not
        (or no longer) valid."""
        recipient = config.get("email")
        try:
            _check_address(recipient)
        except InvalidRequestError:
            raise PermanentDeliveryError("e-mail: invalid recipient address") from None
        variables = message_variables(context, self._settings)
        envs = environments(self._settings.templates_dir)
        event = context.event.name
        domain = mail_domain(self._settings)
        message = EmailMessageData(
            sender=self._settings.mail_from,
            recipient=str(recipient),
            subject=" ".join(str(variables["summary"]).split()),
            text=render(envs.text, "email", event, ".txt", variables).strip() + "\n",
            html=render(envs.html, "email", event, ".html", variables).strip() + "\n",
            message_id=f"<{context.delivery_id}@{domain}>",
            date=format_datetime(context.attempt_at),
        )
        try:
            for part in (message.subject, message.text, message.html):
                part.encode("utf-8")
        except UnicodeEncodeError:  # event data stored before it was checked
            raise PermanentDeliveryError("e-mail: event data is not valid Unicode") from None
        return message

    async def send(self, message: EmailMessageData) -> Receipt:
        """One SMTP session on a thread of the event loop's executor (smtplib blocks)."""
        return await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessageData) -> Receipt:
        target = f"SMTP {self._settings.smtp_host}:{self._settings.smtp_port}"
        try:
            smtp = self._factory()
            try:
                smtp.send_message(message.to_message())
            finally:
                _quit(smtp)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (550, b""))
            raise self._reply_error(
                f"{target} refused the recipient", code, reply, rcpt=True
            ) from None
        except smtplib.SMTPServerDisconnected as exc:
            raise TransientDeliveryError(f"{target}: disconnected: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            raise self._reply_error(target, exc.smtp_code, exc.smtp_error) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentDeliveryError(f"{target}: not supported: {exc}") from None
        except smtplib.SMTPException as exc:
            raise PermanentDeliveryError(f"{target}: {type(exc).__name__}: {exc}") from None
        except ssl.SSLCertVerificationError as exc:
            raise PermanentDeliveryError(
                f"{target}: TLS certificate: {exc.verify_message}"
            ) from None
        except TimeoutError:
            raise TransientDeliveryError(f"{target}: timed out") from None
        except OSError as exc:
            raise TransientDeliveryError(f"{target}: {type(exc).__name__}: {exc}") from None
        return Receipt(status_code=250, response_excerpt=None)

    def _reply_error(
        self, prefix: str, code: int, reply: bytes | str, *, rcpt: bool = False
    ) -> TransientDeliveryError | PermanentDeliveryError:
        """SMTP reply classes: 5xx permanent (but 552 to RCPT is 452), everything else
        transient."""
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        excerpt = text.encode()[: self._settings.response_excerpt_bytes].decode("utf-8", "ignore")
        message = f"{prefix}: {code} {excerpt}".strip()
        if 500 <= code < 600 and not (rcpt and code == 552):
            return PermanentDeliveryError(message, status_code=code, response_excerpt=excerpt)
        return TransientDeliveryError(message, status_code=code, response_excerpt=excerpt)


def _quit(smtp: smtplib.SMTP) -> None:
    """End the session politely; a server that already hung up is not an error here."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
