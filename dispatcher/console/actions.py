"""The console's actions (POST forms): sign in and out; create, test, reset and delete a
notification; redeliver a delivery. Each checks the session's CSRF token, authorises like
the API, calls the same use case the API calls, and answers 303 to the page that shows the
result (Post/Redirect/Get), or the form again with its errors (400).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from dispatcher.console.deps import (
    ActionDep,
    ActionNotificationDep,
    ActionRepositoryDep,
    FormDep,
    PagesDep,
    RedeliverNotificationDep,
    RuntimeDep,
    SessionDep,
    VisitorDep,
)
from dispatcher.console.forms import CreateForm, create_request, error_input
from dispatcher.console.pages import DELIVERY, NOTIFICATION, repository_context
from dispatcher.errors import AuthError, InvalidRequestError
from dispatcher.models import Notification
from dispatcher.service import delivery_log, notifications, tokens

router = APIRouter()


@router.post("/sign-in")
def sign_in(
    request: Request, pages: PagesDep, visitor: VisitorDep, form: FormDep, session: SessionDep
) -> Response:
    """Keep the token in the session when it is valid now (of any scope: the pages then
    answer 403 where the API would); 401 with the form again when it is not."""
    visitor.check_csrf(form.get("csrf"))
    next_path = _safe_next(form.get("next", ""))
    secret = form.get("token", "").strip()
    try:
        tokens.authenticate(session, secret)
    except AuthError:
        return pages.page(
            request,
            "sign_in.html",
            status=401,
            error="This token is not valid: it is unknown, expired or revoked.",
            next_path=next_path,
        )
    visitor.sign_in(secret)
    return pages.redirect(request, next_path or "/")


@router.post("/sign-out")
def sign_out(request: Request, pages: PagesDep, visitor: VisitorDep, form: FormDep) -> Response:
    visitor.check_csrf(form.get("csrf"))
    visitor.sign_out()
    return pages.redirect(request, "/sign-in")


@router.post("/repository/{namespace}/{repository}/notification/")
def create_notification(
    request: Request,
    pages: PagesDep,
    action: ActionDep,
    repository: ActionRepositoryDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    method = action.form.get("method", "")
    try:
        create = create_request(action.form)
        notification = notifications.create_notification(
            session,
            repository,
            event=create.event,
            method=create.method,
            config=create.config,
            event_config=create.event_config,
            title=create.title,
            settings=runtime.settings,
        )
    except InvalidRequestError as exc:
        session.rollback()
        form = CreateForm(values=action.form, errors={error_input(exc, method): exc.message})
        context = repository_context(session, repository, form)
        return pages.page(request, "repository.html", status=400, **context)
    session.commit()
    return pages.redirect(request, _notification_path(notification), notice="created")


@router.post(NOTIFICATION + "/test")
def test_notification(
    request: Request,
    pages: PagesDep,
    notification: ActionNotificationDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    """Queue the sample delivery and show the notification's deliveries, where it appears."""
    notifications.queue_test(session, notification, runtime.settings, runtime.doorbell)
    return pages.redirect(request, _notification_path(notification), notice="tested")


@router.post(NOTIFICATION + "/reset")
def reset_notification(
    request: Request,
    pages: PagesDep,
    action: ActionDep,
    notification: ActionNotificationDep,
    session: SessionDep,
) -> Response:
    """Back to the page the form was on: the notification's (``back=notification``) or the
    repository's."""
    notifications.reset_failures(session, notification)
    session.commit()
    if action.form.get("back") == "notification":
        return pages.redirect(request, _notification_path(notification), notice="reset")
    return pages.redirect(
        request, f"/repository/{notification.repository.full_name}", notice="reset"
    )


@router.post(NOTIFICATION + "/delete")
def delete_notification(
    request: Request,
    pages: PagesDep,
    notification: ActionNotificationDep,
    repository: ActionRepositoryDep,
    session: SessionDep,
) -> Response:
    notifications.delete_notification(session, notification)
    session.commit()
    return pages.redirect(request, f"/repository/{repository.full_name}", notice="deleted")


@router.post(DELIVERY + "/redeliver")
def redeliver(
    request: Request,
    pages: PagesDep,
    notification: RedeliverNotificationDep,
    session: SessionDep,
    runtime: RuntimeDep,
    delivery_id: str,
) -> Response:
    original = delivery_log.get_delivery(session, notification, delivery_id)
    delivery = delivery_log.redeliver(session, original, runtime.doorbell)
    path = f"{_notification_path(notification)}/deliveries/{delivery.id}"
    return pages.redirect(request, path, notice="redelivered")


def _notification_path(notification: Notification) -> str:
    return f"/repository/{notification.repository.full_name}/notification/{notification.uuid}"


def _safe_next(path: str) -> str:
    """A path inside the console to go to after sign-in, or "" (never another site)."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path or len(path) > 2048:
        return ""
    return path
