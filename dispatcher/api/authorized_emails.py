"""Quay's e-mail authorization endpoints and its confirmation link.

* ``GET …/authorizedemail/{email}`` (checkRepoEmailAuthorized): 200 with the record
  ``{"email", "repository", "namespace", "confirmed"}``, 404 when there is none;
* ``POST …/authorizedemail/{email}`` (sendAuthorizeRepoEmail): 200 with the record; unless
  the address is already confirmed, stores a new code and mails the confirmation link. When
  the mail cannot be sent the record stays unconfirmed and the answer is 503
  ``service_unavailable`` (the SMTP server could not be reached or asked to try later) or 502
  ``bad_gateway`` (it refused the message), with the reason; asking again sends a new link;
* ``GET /authrepoemail?code=…``: the page the link opens, with Quay's messages (200 when the
  address is now confirmed, 400 ``Invalid confirmation code.`` otherwise).

Both API endpoints authorise like the notification endpoints (``repo:admin`` on the path's
repository, 404 when it is not registered).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from dispatcher.api.deps import AdminRepositoryDep, RuntimeDep, SessionDep
from dispatcher.api.problems import PROBLEM_RESPONSES, Problem, problem_response
from dispatcher.config import Settings
from dispatcher.errors import (
    DeliveryError,
    InvalidRequestError,
    NotFoundError,
    TransientDeliveryError,
)
from dispatcher.models import Repository
from dispatcher.service import authorized_emails

if TYPE_CHECKING:
    from dispatcher.senders.email import EmailMessageData

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/repository/{namespace}/{repository}", tags=["authorized e-mail"])
confirmation = APIRouter(tags=["authorized e-mail"])

ITEM = "/authorizedemail/{email}"
_MAIL_FAILED: dict[int | str, dict[str, Any]] = {
    502: {"model": Problem, "description": "The SMTP server refused the confirmation e-mail"},
    503: {"model": Problem, "description": "The SMTP server could not take it now; ask again"},
}


class AuthorizedEmailView(BaseModel):
    """An address and whether it is confirmed for the repository (Quay's fields)."""

    email: str
    repository: str
    namespace: str
    confirmed: bool

    @classmethod
    def of(cls, view: authorized_emails.AuthorizationView) -> AuthorizedEmailView:
        return cls(
            email=view.email,
            repository=view.repository,
            namespace=view.namespace,
            confirmed=view.confirmed,
        )


@router.get(
    ITEM,
    operation_id="checkRepoEmailAuthorized",
    summary="Whether an e-mail address is authorized for the repository's notifications",
    responses=PROBLEM_RESPONSES,
)
def check_authorized(
    email: str, repository: AdminRepositoryDep, session: SessionDep
) -> AuthorizedEmailView:
    record = authorized_emails.find(session, repository, email)
    if record is None:
        raise NotFoundError()
    return AuthorizedEmailView.of(authorized_emails.AuthorizationView.of(record, repository))


@router.post(
    ITEM,
    operation_id="sendAuthorizeRepoEmail",
    summary="Mail a confirmation link to an address, unless it is already authorized",
    responses={**PROBLEM_RESPONSES, **_MAIL_FAILED},
    response_model=AuthorizedEmailView,
)
async def send_authorization(
    email: str,
    request: Request,
    repository: AdminRepositoryDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> AuthorizedEmailView | JSONResponse:
    settings = runtime.settings
    # The database work blocks: keep it off the event loop (the send below runs on a thread).
    view, message = await run_in_threadpool(_request, session, repository, email, settings)
    if message is None:
        return view
    try:
        await authorized_emails.send_confirmation(settings, message)
    except DeliveryError as exc:
        transient = isinstance(exc, TransientDeliveryError)
        log.warning("confirmation e-mail for %s not sent: %s", repository.full_name, exc.message)
        return problem_response(
            request,
            503 if transient else 502,
            f"The confirmation e-mail could not be sent ({exc.message}); the address stays "
            "unconfirmed: ask again to send a new link",
            "service_unavailable" if transient else "bad_gateway",
        )
    return view


def _request(
    session: Session, repository: Repository, email: str, settings: Settings
) -> tuple[AuthorizedEmailView, EmailMessageData | None]:
    record, message = authorized_emails.request_confirmation(session, repository, email, settings)
    session.commit()  # before the mail goes out, so its link works as soon as it arrives
    view = authorized_emails.AuthorizationView.of(record, repository)
    return AuthorizedEmailView.of(view), message


@confirmation.get(
    authorized_emails.CONFIRM_PATH,
    summary="The page a confirmation link opens: confirms the address",
    response_class=HTMLResponse,
    responses={400: {"description": "Invalid confirmation code (an HTML page)"}},
)
def confirm_address(
    session: SessionDep, runtime: RuntimeDep, code: str | None = None
) -> HTMLResponse:
    settings = runtime.settings
    try:
        _record, repository = authorized_emails.confirm(session, code)
    except InvalidRequestError as exc:
        page = authorized_emails.confirmation_page(settings, error=exc.message)
        return HTMLResponse(page, status_code=400)
    session.commit()
    log.info("e-mail address confirmed for %s", repository.full_name)
    return HTMLResponse(authorized_emails.confirmation_page(settings, repository=repository))
