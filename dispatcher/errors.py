"""The exception tree of dispatcher.

::

    DispatcherError
    ├── InvalidRequestError        bad input from a caller            -> API 400 invalid_request
    │   ├── InvalidFieldError      one field of a config is wrong (``location`` names it)
    │   ├── UnknownEventError      event name not in the catalogue
    │   ├── UnknownMethodError     method name not in the sender registry
    │   └── RequestTooLargeError   body over DISPATCHER_MAX_REQUEST_BYTES -> API 413
    ├── NotFoundError              no such repository / notification  -> API 404 not_found
    ├── NotificationNotFoundError  Quay's 400 for delete/reset/test   -> API 400 invalid_request
    ├── AuthError                  missing/invalid/expired/revoked    -> API 401 invalid_token
    ├── PermissionDeniedError      scope or grant missing             -> API 403 insufficient_scope
    ├── DatabaseUnavailableError   the database cannot be reached     -> API 503
    └── DeliveryError              one delivery attempt failed
        ├── TransientDeliveryError (``retry_after``) retried on the schedule
        └── PermanentDeliveryError                  ends the delivery as failed at once

Senders raise only the two ``DeliveryError`` leaves; the retry decision lives in the type.
Messages never contain secrets: senders describe targets with masked URLs.
"""

from __future__ import annotations

# How much of a caller's text a message repeats.
ECHO_CHARS = 80


def unicode_safe(text: str) -> str:
    """``text`` with each lone surrogate (which no response or database could encode) replaced
    by U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def echo(text: str) -> str:
    """A caller's ``text`` as a message may repeat it: cut to :data:`ECHO_CHARS` characters,
    lone surrogates replaced."""
    return unicode_safe(text if len(text) <= ECHO_CHARS else text[: ECHO_CHARS - 1] + "…")


class DispatcherError(Exception):
    """Base of every error dispatcher raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequestError(DispatcherError):
    """The caller sent something we will not store; the message tells them what to fix."""


class InvalidFieldError(InvalidRequestError):
    """One field of a create request is wrong. ``location`` names it as the request does:
    ``("config", "url")``, ``("eventConfig", "level")``; forms show the message beside it."""

    def __init__(self, message: str, *, location: tuple[str, str]) -> None:
        super().__init__(message)
        self.location = location


class UnknownEventError(InvalidRequestError):
    def __init__(self, event: str) -> None:
        super().__init__(f"Unknown event '{echo(event)}'")
        self.event = event


class UnknownMethodError(InvalidRequestError):
    def __init__(self, method: str) -> None:
        super().__init__(f"Unknown notification method '{echo(method)}'")
        self.method = method


class RequestTooLargeError(InvalidRequestError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"Request body is larger than {limit} bytes")
        self.limit = limit


class NotFoundError(DispatcherError):
    def __init__(self, message: str = "Not Found") -> None:
        super().__init__(message)


class NotificationNotFoundError(DispatcherError):
    """Quay answers 400 (not 404) when delete, reset or test names an unknown uuid."""

    def __init__(self, namespace: str, repository: str, uuid: str) -> None:
        super().__init__(
            "No repository notification found for: "
            f"{echo(namespace)}, {echo(repository)}, {echo(uuid)}"
        )


class AuthError(DispatcherError):
    def __init__(self, message: str = "Requires authentication") -> None:
        super().__init__(message)


class PermissionDeniedError(DispatcherError):
    def __init__(self, message: str = "Unauthorized") -> None:
        super().__init__(message)


class DatabaseUnavailableError(DispatcherError):
    def __init__(self, message: str = "The database is unavailable; try again shortly") -> None:
        super().__init__(message)


class DeliveryError(DispatcherError):
    """One attempt failed. ``status_code`` and ``response_excerpt`` are kept in the log."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        response_excerpt: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response_excerpt = response_excerpt


class TransientDeliveryError(DeliveryError):
    """Worth retrying: timeouts, connection errors, 5xx, 408, 429, SMTP 4xx."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        response_excerpt: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, response_excerpt=response_excerpt)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help: other 4xx, SMTP 5xx, template errors, a forbidden address."""


def http_status(error: DispatcherError) -> int:
    """The HTTP status an edge (the API, the console) answers ``error`` with."""
    if isinstance(error, RequestTooLargeError):
        return 413
    if isinstance(error, InvalidRequestError | NotificationNotFoundError):
        return 400
    if isinstance(error, AuthError):
        return 401
    if isinstance(error, PermissionDeniedError):
        return 403
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, DatabaseUnavailableError):
        return 503
    return 500
