"""Authorized e-mail addresses: who may receive a repository's e-mail notifications.

Quay's rule, kept while ``DISPATCHER_EMAIL_AUTHORIZATION`` is ``required`` (the default): an
``email`` notification can only be created for an address confirmed for its repository, so a
token holder cannot make dispatcher mail strangers. The flow:

1. a repository admin asks (:func:`request_confirmation`): a fresh random code is stored (its
   SHA-256 only) and a confirmation e-mail built, with the link
   ``<PREFERRED_URL_SCHEME>://<SERVER_HOSTNAME>/authrepoemail?code=<code>`` as Quay builds it;
2. the caller sends it (:func:`send_confirmation`, one SMTP attempt through the same settings
   as notifications);
3. the address's owner follows the link and :func:`confirm` marks the address confirmed.

Asking again for an unconfirmed address replaces its code, so only the newest link works. An
operator may skip the e-mail with :func:`authorize` (``dispatcher emails authorize``).
Authorization is per repository and exact address string, as in Quay. Functions take an open
session and leave committing to the caller.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dispatcher.config import Settings
from dispatcher.errors import InvalidFieldError, InvalidRequestError
from dispatcher.models import AuthorizedEmail, Repository, utcnow
from dispatcher.service.tokens import hash_secret

if TYPE_CHECKING:  # the senders load Jinja and the e-mail validator: only when one is needed
    from dispatcher.senders.email import EmailMessageData

NOT_AUTHORIZED = (
    "The specified e-mail address is not authorized to receive notifications for this repository"
)
INVALID_CODE = "Invalid confirmation code."
CONFIRM_PATH = "/authrepoemail"
TEMPLATE = "confirm_address"
PAGE_TEMPLATE = "pages/confirm_address.html"
# Codes are token_urlsafe(32), 43 characters: anything much longer is not one of ours.
_CODE_MAX = 128


@dataclass(frozen=True)
class AuthorizationView:
    """Quay's view of an authorization record (its code is never shown)."""

    email: str
    repository: str
    namespace: str
    confirmed: bool

    @classmethod
    def of(cls, record: AuthorizedEmail, repository: Repository) -> AuthorizationView:
        return cls(
            email=record.email,
            repository=repository.name,
            namespace=repository.namespace,
            confirmed=record.confirmed,
        )


def find(session: Session, repository: Repository, address: str) -> AuthorizedEmail | None:
    """The record of ``address`` for ``repository``, confirmed or not, or None."""
    return session.scalars(
        select(AuthorizedEmail).where(
            AuthorizedEmail.repository_id == repository.id, AuthorizedEmail.email == address
        )
    ).one_or_none()


def require_authorized(
    session: Session, repository: Repository, config: dict[str, Any], settings: Settings
) -> None:
    """InvalidFieldError (naming ``config.email``) with Quay's message unless the address of
    an ``email`` config is confirmed for ``repository`` (nothing is checked with
    ``email_authorization`` off)."""
    if settings.email_authorization == "off":
        return
    record = find(session, repository, str(config.get("email", "")))
    if record is None or not record.confirmed:
        raise InvalidFieldError(NOT_AUTHORIZED, location=("config", "email"))


def _check_address(address: str, settings: Settings) -> None:
    from dispatcher.senders import email

    email.validate_config({"email": address}, settings)


def _get_or_add(session: Session, repository: Repository, address: str) -> AuthorizedEmail:
    """The record of ``address``, added unconfirmed if missing. Two requests adding the same
    address at once both end with the one row the unique constraint lets in."""
    record = find(session, repository, address)
    if record is not None:
        return record
    record = AuthorizedEmail(
        repository_id=repository.id, email=address, confirmed=False, created_at=utcnow()
    )
    try:
        with session.begin_nested():
            session.add(record)
    except IntegrityError:
        existing = find(session, repository, address)
        if existing is None:  # the other row is gone again: nothing sane left to do but ask
            raise InvalidRequestError("The address changed concurrently; try again") from None
        return existing
    return record


def request_confirmation(
    session: Session, repository: Repository, address: str, settings: Settings
) -> tuple[AuthorizedEmail, EmailMessageData | None]:
    """Start (or restart) the confirmation of ``address`` for ``repository``.

    Returns the record and the confirmation e-mail to send, or None when the address is
    already confirmed. Raises InvalidRequestError (``Invalid e-mail address``) for anything that is
    not one valid address."""
    _check_address(address, settings)
    record = _get_or_add(session, repository, address)
    if record.confirmed:
        return record, None
    code = secrets.token_urlsafe(32)
    record.code_hash = hash_secret(code)
    session.flush()
    return record, confirmation_message(settings, repository, address, code)


def repository_page(settings: Settings, repository: Repository) -> str:
    """The registry's page of ``repository`` (Quay's link in its messages)."""
    return (
        f"{settings.preferred_url_scheme}://{settings.server_hostname}"
        f"/repository/{repository.full_name}"
    )


def confirmation_url(settings: Settings, code: str) -> str:
    """Where the confirmation link points: dispatcher's ``/authrepoemail`` on the configured
    host, as Quay builds its link from SERVER_HOSTNAME and PREFERRED_URL_SCHEME."""
    return f"{settings.preferred_url_scheme}://{settings.server_hostname}{CONFIRM_PATH}?code={code}"


def confirmation_message(
    settings: Settings, repository: Repository, address: str, code: str
) -> EmailMessageData:
    """The confirmation e-mail (``templates/email/confirm_address.{txt,html}``), from
    ``mail_from`` to ``address``. PermanentDeliveryError if a template fails."""
    from dispatcher.senders.email import EmailMessageData, mail_domain
    from dispatcher.senders.rendering import environments, render

    variables = {
        "namespace": repository.namespace,
        "name": repository.name,
        "repository": repository.full_name,
        "confirm_url": confirmation_url(settings, code),
        "repository_url": repository_page(settings, repository),
    }
    envs = environments(settings.templates_dir)
    return EmailMessageData(
        sender=settings.mail_from,
        recipient=address,
        subject=f"Please verify your e-mail address for repository {repository.full_name}",
        text=render(envs.text, "email", TEMPLATE, ".txt", variables).strip() + "\n",
        html=render(envs.html, "email", TEMPLATE, ".html", variables).strip() + "\n",
        message_id=make_msgid(domain=mail_domain(settings)),
        date=format_datetime(utcnow()),
    )


async def send_confirmation(settings: Settings, message: EmailMessageData) -> None:
    """Send the confirmation e-mail in one SMTP attempt on an executor thread (the event loop
    is not blocked). Raises TransientDeliveryError or PermanentDeliveryError, as the
    ``email`` method does for the same SMTP answer."""
    from dispatcher.senders.email import EmailSender

    await EmailSender(settings).send(message)


def confirm(session: Session, code: str | None) -> tuple[AuthorizedEmail, Repository]:
    """Mark the address whose confirmation code is ``code`` confirmed (again, harmlessly, if
    it already is). InvalidRequestError with Quay's ``Invalid confirmation code.`` otherwise."""
    if not code or len(code) > _CODE_MAX:
        raise InvalidRequestError(INVALID_CODE)
    record = session.scalars(
        select(AuthorizedEmail).where(AuthorizedEmail.code_hash == hash_secret(code))
    ).one_or_none()
    if record is None:
        raise InvalidRequestError(INVALID_CODE)
    if not record.confirmed:
        record.confirmed = True
        record.confirmed_at = utcnow()
    return record, record.repository


def confirmation_page(
    settings: Settings, *, error: str | None = None, repository: Repository | None = None
) -> str:
    """The HTML page the confirmation link opens (``templates/pages/confirm_address.html``):
    Quay's success message naming ``repository``, or ``error``."""
    from dispatcher.senders.rendering import environments

    template = environments(settings.templates_dir).html.get_template(PAGE_TEMPLATE)
    if repository is None:
        return template.render(error=error)
    return template.render(
        error=None,
        repository=repository.full_name,
        repository_url=repository_page(settings, repository),
    )


def authorize(session: Session, repository: Repository, address: str, settings: Settings) -> bool:
    """Confirm ``address`` for ``repository`` without an e-mail (the operator vouches for it).
    Returns False when it already was. InvalidRequestError for an invalid address."""
    _check_address(address, settings)
    record = _get_or_add(session, repository, address)
    if record.confirmed:
        return False
    record.confirmed = True
    record.confirmed_at = utcnow()
    record.code_hash = None
    return True
