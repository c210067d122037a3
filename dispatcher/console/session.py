"""The console's signed session cookie and its CSRF token.

One cookie, ``dispatcher_console``: HttpOnly, SameSite=Strict, scoped to the console's path,
Secure when ``DISPATCHER_PREFERRED_URL_SCHEME`` is https. It holds a random CSRF token and,
once signed in, the bearer token, signed with itsdangerous (what Starlette's sessions use)
under the console secret (:func:`dispatcher.service.server_secrets.console_secret`) and dated, so a
cookie older than ``console_session_lifetime`` or altered in any byte is worth nothing.

The bearer token is checked again on every request (``tokens.authenticate``), so a revoked or
expired token stops working at the next request, as it does in the API. Every form carries
the session's CSRF token; :meth:`Visitor.check_csrf` compares in constant time.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import Response

from dispatcher.config import Settings
from dispatcher.db import is_connection_error
from dispatcher.service.server_secrets import console_secret

COOKIE = "dispatcher_console"
_SALT = "dispatcher.console.session"
# A cookie is at most 4 KB; refuse to parse anything near that without trying.
_MAX_COOKIE_CHARS = 4096
_MAX_TOKEN_CHARS = 512


class CsrfError(Exception):
    """A form without this session's CSRF token (an old page, or another site's form)."""


@dataclass
class Visitor:
    """Who the cookie says is here. ``token`` is None until sign-in; ``changed`` means the
    response must set the cookie again (a new visitor, a sign-in, a token found invalid)."""

    csrf: str
    token: str | None = None
    changed: bool = False
    signed_out: bool = False

    def check_csrf(self, submitted: str | None) -> None:
        if not submitted or not hmac.compare_digest(submitted.encode(), self.csrf.encode()):
            raise CsrfError()

    def sign_in(self, token: str) -> None:
        """Keep ``token`` and start a new CSRF token (pages from before sign-in go stale)."""
        self.token = token
        self.csrf = secrets.token_urlsafe(32)
        self.changed = True

    def forget_token(self) -> None:
        if self.token is not None:
            self.token = None
            self.changed = True

    def sign_out(self) -> None:
        self.token = None
        self.signed_out = True


class SessionCodec:
    """Signs and reads cookies. The key is read from the database on first use (never at
    import or app creation), once per process."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings
        self._serializer: URLSafeTimedSerializer | None = None
        self._lock = threading.Lock()

    def _signer(self) -> URLSafeTimedSerializer:
        with self._lock:
            if self._serializer is None:
                key = console_secret(self._sessions, self._settings)
                self._serializer = URLSafeTimedSerializer(key, salt=_SALT)
            return self._serializer

    def read(self, cookie: str | None) -> Visitor:
        """The visitor a cookie names, or a new anonymous one (with a new CSRF token) when it
        is absent, altered, too old or not ours."""
        if cookie and len(cookie) <= _MAX_COOKIE_CHARS:
            try:
                data: Any = self._signer().loads(
                    cookie, max_age=int(self._settings.console_session_seconds)
                )
            except BadSignature:
                data = None
            visitor = _visitor(data)
            if visitor is not None:
                return visitor
        return Visitor(csrf=secrets.token_urlsafe(32), changed=True)

    def write(self, response: Response, visitor: Visitor, path: str) -> None:
        """Set (or, after sign-out, delete) the cookie on ``response`` if it changed."""
        secure = self._settings.preferred_url_scheme == "https"
        if visitor.signed_out:
            response.delete_cookie(
                COOKIE, path=path, secure=secure, httponly=True, samesite="strict"
            )
            return
        if not visitor.changed:
            return
        payload: dict[str, str] = {"csrf": visitor.csrf}
        if visitor.token is not None:
            payload["token"] = visitor.token
        try:
            signer = self._signer()
        except DBAPIError as exc:
            # The key lives in a database that is away: this page goes without a cookie.
            if not is_connection_error(exc):
                raise
            return
        response.set_cookie(
            COOKIE,
            signer.dumps(payload),
            max_age=int(self._settings.console_session_seconds),
            path=path,
            secure=secure,
            httponly=True,
            samesite="strict",
        )


def _visitor(data: Any) -> Visitor | None:
    if not isinstance(data, dict):
        return None
    csrf, token = data.get("csrf"), data.get("token")
    if not isinstance(csrf, str) or not csrf:
        return None
    if token is not None and (not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS):
        return None
    return Visitor(csrf=csrf, token=token)
